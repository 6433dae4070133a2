"""DDP under torch's elastic launcher: two CPU ranks with gloo, one thread each, on this machine.

- the ranks end with identical weights, and they equal (max abs diff <= 1e-5) one process that
  trains the same global batch in the same order (DistributedSampler's, `Ranks(0, 1)`);
- a rank killed with SIGKILL mid-epoch ends the whole job, non-zero, in bounded time, with one
  error naming it, no half-written file and nothing exported; --resume continues from the last
  checkpoint and ends with exactly the uninterrupted distributed run's weights;
- Ctrl-C (SIGINT to the launcher) checkpoints every rank at the same batch, exits 130, resumes.

Every job is a real `lenetc build --nproc-per-node 2` (torch.distributed.run in a subprocess).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from lenetc.artifacts import module_class_from_source
from lenetc.check.shapes import check
from lenetc.cli import main
from lenetc.spec.load import load_spec
from lenetc.targets.torch import render
from lenetc.train.datasets import load_dataset
from lenetc.train.distributed import Ranks, from_env, rank_batches, weights_digest
from lenetc.train.loop import TrainIO, fit

ROOT = Path(__file__).resolve().parent.parent

# 2000 samples: 400 test, 160 validation, 1440 training = 90 global batches of 16, 8 per rank:
# the split divides by the world size, so no rank pads its share (see rank_batches)
SPEC = """\
name: tiny
input: {shape: [8]}
layers:
  - {type: linear, out_features: 16}
  - {type: relu}
  - {type: linear, out_features: 3}
train:
  dataset: {name: synthetic, samples: 2000, num_classes: 3}
  epochs: 4
  batch_size: 16
  optimizer: {type: sgd, lr: 0.02, momentum: 0.9}
  schedule: cosine
  seed: 5
verify: {providers: [cpu], batch_sizes: [2]}
"""


def job(spec: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lenetc", "build", str(spec), "-o", str(out)]
    return subprocess.Popen(
        [*cmd, "--nproc-per-node", "2", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out, err


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "tiny" / "weights.pt", weights_only=True)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "tiny.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def reference(spec) -> tuple[Path, str]:
    """One uninterrupted 2-rank build: its folder and its stdout."""
    out = spec.parent / "reference"
    stdout, _ = finish(job(spec, out))
    return out, stdout


def test_two_ranks_agree_and_equal_one_process_in_the_same_order(spec, reference):
    out, stdout = reference
    lines = stdout.splitlines()
    assert any(
        line.startswith("training on cpu (")
        and line.endswith("2 ranks, DDP over gloo, global batch 16 = 2 x 8")
        for line in lines
    ), stdout
    assert re.fullmatch(
        rf"built {out / 'tiny'}: test accuracy (9\d|100)\.\d\d%, parity PASS", lines[-2]
    )
    assert lines[-1] == f"report: {out / 'tiny' / 'report.html'}"
    summary = json.loads((out / "tiny" / "train.json").read_text())
    ranks = summary["distributed"]
    assert ranks["world_size"] == 2 and ranks["backend"] == "gloo"
    digest_0, digest_1 = ranks["rank_weights_sha256"]
    assert digest_0 == digest_1  # both ranks hold identical weights
    trained = weights(out)

    class Saved(torch.nn.Module):  # weights.pt as a module, to digest it the way ranks do
        def state_dict(self, *a, **k):
            return trained

    assert weights_digest(Saved()) == digest_0
    assert len((out / "tiny" / "metrics.jsonl").read_text().splitlines()) == 4

    # one process, one thread, the same global batch of 16 in DistributedSampler's order
    loaded = load_spec(spec)
    trace = check(loaded)
    torch.manual_seed(loaded.train.seed)
    model = module_class_from_source(render(trace), loaded.class_name, spec)()
    data = load_dataset(
        loaded.train.dataset,
        loaded.input_shape,
        trace.num_classes,
        seed=loaded.train.seed,
        validation_split=loaded.train.validation_split,
    )
    assert len(data.y_train) == 1440
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(model, data, loaded.train, TrainIO(log=lambda s: None, ranks=Ranks(0, 1)))
    finally:
        torch.set_num_threads(threads)
    diff = max(float((trained[k] - v).abs().max()) for k, v in model.state_dict().items())
    assert diff <= 1e-5, diff


def test_the_orders_line_up_global_batch_k_is_batch_k_of_one_process():
    one = rank_batches(1440, Ranks(0, 1), seed=5, epoch=3, per_rank=16)
    r0 = rank_batches(1440, Ranks(0, 2), seed=5, epoch=3, per_rank=8)
    r1 = rank_batches(1440, Ranks(1, 2), seed=5, epoch=3, per_rank=8)
    assert len(one) == len(r0) == len(r1) == 90
    for k in range(90):
        assert sorted([*r0[k], *r1[k]]) == sorted(one[k])
    assert not (rank_batches(1440, Ranks(0, 1), 5, 4, 16)[0] == one[0]).all()  # set_epoch


def rank_pid(launcher: int, rank: int) -> int:
    """The pid of a rank: the launcher's child whose environment says RANK=rank."""
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for child in (task / "children").read_text().split():
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ:
                return int(child)
    raise AssertionError(f"no rank {rank} under pid {launcher}")


def start_and_wait_for_a_checkpoint(spec: Path, out: Path) -> subprocess.Popen:
    proc = job(spec, out, "-q")
    checkpoint = out / "tiny" / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.05)  # into a later epoch, away from the boundary
    return proc


def assert_nothing_half_written(folder: Path) -> None:
    names = sorted(p.name for p in folder.iterdir())
    leftovers = [n for n in names if n.startswith(".") and n != ".lenetc.lock"]
    assert not leftovers, names  # no temporary file left behind (the lock says who held it)
    assert not {"weights.pt", "model.onnx", "verify.json", "manifest.json"} & set(names), names
    state = torch.load(folder / "checkpoint.pt", weights_only=True)  # whole, and readable
    assert state["loop"]["epoch"] >= 1


def test_a_rank_killed_mid_epoch_ends_the_job_and_resume_continues(spec, reference, tmp_path):
    out = tmp_path / "killed"
    proc = start_and_wait_for_a_checkpoint(spec, out)
    victim = rank_pid(proc.pid, 1)
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 1, err
    assert took < 60, f"the job took {took:.0f} s to end after a rank died"
    assert f"error: rank 1 (pid {victim}) was killed by SIGKILL during the job" in err
    assert err.count("error:") == 1, err  # one error: the rank that lost its peer stays quiet
    assert "resume from the last checkpoint with: lenetc build" in err
    assert "Traceback" not in err
    assert_nothing_half_written(out / "tiny")

    stdout, _ = finish(job(spec, out, "--resume"))
    assert "resuming from" in stdout
    ref = weights(reference[0])
    resumed = weights(out)
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)  # exactly, not merely close


@pytest.mark.slow
def test_ctrl_c_checkpoints_every_rank_and_resume_gives_the_same_weights(spec, reference, tmp_path):
    out = tmp_path / "interrupted"
    proc = start_and_wait_for_a_checkpoint(spec, out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "training interrupted after epoch" in err
    assert err.count("stopping after this batch") == 1  # rank 0 speaks for the job
    assert "resume with: lenetc build" in err and "--nproc-per-node 2 --resume" in err
    assert "Traceback" not in err
    assert_nothing_half_written(out / "tiny")
    finish(job(spec, out, "--resume"))
    ref, resumed = weights(reference[0]), weights(out)
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)


@pytest.mark.slow
def test_a_bare_torchrun_runs_the_same_job(spec, reference, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LENETC_RESUME_COMMAND", None)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    done = subprocess.run(
        [
            *torchrun,
            "--nproc-per-node",
            "2",
            "-m",
            "lenetc",
            "build",
            str(spec),
            "-o",
            str(tmp_path),
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("built ") == 1  # rank 0 reports for the job
    ref, bare = weights(reference[0]), weights(tmp_path)
    assert all(torch.equal(ref[k], bare[k]) for k in ref)


def test_the_global_batch_must_divide_by_the_world_size(spec, tmp_path):
    result = CliRunner().invoke(
        main, ["build", str(spec), "-o", str(tmp_path), "--nproc-per-node", "3"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{spec}: train.batch_size 16 does not divide by the world size 3 (3 processes); it is "
        "the global batch"
    )
    assert "hint: set batch_size to 15, 18" in result.stderr
    assert not (tmp_path / "tiny").exists()


def test_torchrun_environment_and_nproc_inside_torchrun(spec, tmp_path, monkeypatch):
    assert from_env({}) is None
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "x"}
    assert from_env(env) == Ranks(3, 4, 1)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(
        main, ["build", str(spec), "-o", str(tmp_path), "--nproc-per-node", "2"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("--nproc-per-node starts torchrun itself")
