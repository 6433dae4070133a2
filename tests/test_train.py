"""Stage 4b: the training loop. Determinism, exact resume, each loss / optimizer / schedule, early
stopping, and the CLI's Ctrl-C and --resume, all on tiny synthetic problems so it stays fast.

Weights are compared exactly (torch.equal, and the bytes of weights.pt): "close" would hide the
very nondeterminism these tests are for.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lenetc.errors import RuntimeFailure
from lenetc.spec.config import DatasetConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from lenetc.train.datasets import load_dataset
from lenetc.train.loop import TrainingInterrupted, TrainIO, evaluate, fit

ROOT = Path(__file__).resolve().parent.parent
QUIET = TrainIO(log=lambda line: None)


class Net(nn.Module):
    """An MLP with dropout, so the loop's use of the global RNG is under test too."""

    def __init__(self, log_softmax: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)
        self.log_softmax = log_softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(F.dropout(F.relu(self.fc1(x)), 0.2, self.training))
        return F.log_softmax(x, 1) if self.log_softmax else x


def config(**kw) -> TrainConfig:
    base = TrainConfig(
        dataset=DatasetConfig(name="synthetic", samples=200, num_classes=3),
        epochs=4,
        batch_size=16,
        optimizer=OptimizerConfig(type="sgd", lr=0.05, momentum=0.9),
        seed=3,
    )
    return dataclasses.replace(base, **kw)


def data_for(cfg: TrainConfig):
    return load_dataset(cfg.dataset, (8,), 3, seed=cfg.seed, validation_split=cfg.validation_split)


def trained(cfg: TrainConfig, io: TrainIO = QUIET, init_seed: int = 0, log_softmax=False):
    torch.manual_seed(init_seed)
    model = Net(log_softmax)
    result = fit(model, data_for(cfg), cfg, io)
    return model, result


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_seconds(metrics) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "seconds"} for m in metrics]


# --- determinism and resume -------------------------------------------------------------------


def test_same_seed_same_weights_and_global_rng_left_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, ra = trained(config())
    b, rb = trained(config())
    assert same_weights(a, b)
    assert without_seconds(ra.metrics) == without_seconds(rb.metrics)
    c, _ = trained(config(seed=4))
    assert not same_weights(a, c)
    torch.manual_seed(123)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("stop_at", [7, 13, 26], ids=["mid-epoch-1", "epoch-1-end", "mid-epoch-3"])
def test_resume_after_an_interrupt_gives_the_uninterrupted_weights(tmp_path, stop_at):
    # 180 training samples / 16 = 12 batches per epoch; stop_at counts batches over the whole run
    cfg = config(schedule=ScheduleConfig(type="cosine"))
    reference, ref_result = trained(cfg)

    polls = iter(range(1, 10_000))
    ckpt, metrics = tmp_path / "checkpoint.pt", tmp_path / "metrics.jsonl"
    io = TrainIO(
        checkpoint=ckpt, metrics=metrics, log=lambda s: None, stop=lambda: next(polls) >= stop_at
    )
    with pytest.raises(TrainingInterrupted) as exc:
        trained(cfg, io)
    assert ckpt.exists() and str(ckpt) in str(exc.value)
    # a fresh process would start from other initial weights: resume must not depend on them
    resumed, result = trained(cfg, dataclasses.replace(io, resume=True, stop=lambda: False), 99)
    assert same_weights(resumed, reference)
    assert without_seconds(result.metrics) == without_seconds(ref_result.metrics)
    assert result.test_accuracy == ref_result.test_accuracy
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert without_seconds(lines) == without_seconds(ref_result.metrics)


def test_resume_refuses_a_checkpoint_from_another_config(tmp_path):
    io = TrainIO(checkpoint=tmp_path / "c.pt", log=lambda s: None)
    trained(config(epochs=1), io)
    with pytest.raises(RuntimeFailure, match="written for a different spec, data or overrides"):
        trained(config(epochs=1, batch_size=8), dataclasses.replace(io, resume=True))
    (tmp_path / "c.pt").write_bytes(b"garbage")
    with pytest.raises(RuntimeFailure, match=r"c.pt: cannot be read"):
        trained(config(epochs=1), dataclasses.replace(io, resume=True))


def test_resume_without_a_checkpoint_starts_over(tmp_path):
    said = []
    io = TrainIO(checkpoint=tmp_path / "none.pt", resume=True, log=said.append)
    model, _ = trained(config(epochs=2), io)
    assert said[0].startswith("no checkpoint at") and same_weights(
        model, trained(config(epochs=2))[0]
    )


# --- losses, optimizers, schedules, early stopping ----------------------------------------------


@pytest.mark.parametrize("loss", ["cross_entropy", "nll", "mse"])
def test_each_loss_decreases(loss):
    cfg = config(loss=loss, epochs=5)
    model, result = trained(cfg, log_softmax=loss == "nll")
    first, last = result.metrics[0]["train_loss"], result.metrics[-1]["train_loss"]
    assert last < 0.7 * first, result.metrics
    assert result.test_accuracy > 0.9


@pytest.mark.parametrize(
    "opt",
    [
        OptimizerConfig(type="sgd", lr=0.05, momentum=0.9),
        OptimizerConfig(type="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        OptimizerConfig(type="sgd", lr=0.2, momentum=0.0),
        OptimizerConfig(type="adam", lr=0.01, momentum=0.0),
        OptimizerConfig(type="adamw", lr=0.01, momentum=0.0, weight_decay=0.01),
    ],
    ids=["sgd-momentum", "sgd-nesterov-wd", "sgd-plain", "adam", "adamw"],
)
def test_each_optimizer_decreases_the_loss(opt):
    _, result = trained(config(optimizer=opt, epochs=5))
    assert result.metrics[-1]["train_loss"] < 0.7 * result.metrics[0]["train_loss"]
    assert result.test_accuracy > 0.9


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (ScheduleConfig(type="none"), [0.1, 0.1, 0.1, 0.1]),
        (ScheduleConfig(type="step", step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05]),
        (
            ScheduleConfig(type="cosine"),
            [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)],
        ),
    ],
    ids=["none", "step", "cosine"],
)
def test_schedules_set_each_epochs_lr(schedule, expected):
    cfg = config(schedule=schedule, optimizer=OptimizerConfig(type="sgd", lr=0.1))
    _, result = trained(cfg)
    assert [m["lr"] for m in result.metrics] == pytest.approx(expected, rel=1e-9)


def test_early_stopping_stops_and_keeps_the_best_validation_epoch():
    # few noisy samples and a large lr: the validation loss soon stops improving
    cfg = config(
        dataset=DatasetConfig(name="synthetic", samples=60, num_classes=3),
        epochs=200,
        validation_split=0.3,
        patience=3,
        optimizer=OptimizerConfig(type="adam", lr=0.05, momentum=0.0),
    )
    model, result = trained(cfg)
    assert result.stopped_early and result.epochs < 200
    assert result.epochs == result.best_epoch + 3 == len(result.metrics)
    data = data_for(cfg)
    best = min(m["val_loss"] for m in result.metrics)
    assert result.metrics[result.best_epoch - 1]["val_loss"] == best
    assert evaluate(model, data.x_val, data.y_val, cfg.loss)[0] == pytest.approx(best, rel=1e-6)


def test_progress_bar_is_drawn_only_when_asked(capsys):
    trained(config(epochs=1), dataclasses.replace(QUIET, progress=True))
    assert "epoch 1/1" in capsys.readouterr().err
    trained(config(epochs=1))
    assert capsys.readouterr().err == ""


# --- the CLI: Ctrl-C mid-training, kill -9, --resume ------------------------------------------

SPEC = """\
name: tiny
input: {shape: [8]}
layers:
  - {type: linear, out_features: 16}
  - {type: relu}
  - {type: dropout, p: 0.2}
  - {type: linear, out_features: 3}
train:
  dataset: {name: synthetic, samples: 300, num_classes: 3}
  epochs: 60
  batch_size: 16
  optimizer: {type: sgd, lr: 0.01, momentum: 0.9}
  schedule: cosine
  seed: 5
verify: {providers: [cpu], batch_sizes: [2]}
"""


def lenetc(*args: str, **kw) -> subprocess.Popen:
    # one thread: a tiny MLP gains nothing from more, and loses much when cores are shared
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "lenetc", "build", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def tensor_bytes(path: Path) -> dict[str, bytes]:
    state = torch.load(path, weights_only=True)
    return {k: v.numpy().tobytes() for k, v in state.items()}


def interrupt_after_first_checkpoint(spec: Path, out: Path, sig: int) -> tuple[int, str]:
    proc = lenetc(str(spec), "-o", str(out), "-q")
    ckpt = out / "tiny" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.03)  # land somewhere inside a later epoch, not on a boundary
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
def test_cli_ctrl_c_and_kill_then_resume_end_with_the_uninterrupted_weights(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    reference = lenetc(str(spec), "-o", str(tmp_path / "ref"), "-q")

    code, err = interrupt_after_first_checkpoint(spec, tmp_path / "int", signal.SIGINT)
    assert code == 130, err
    assert "training interrupted after epoch" in err and "checkpoint saved to" in err
    assert f"resume with: lenetc build {spec} -o {tmp_path / 'int'} --resume" in err
    assert "Traceback" not in err
    assert not (tmp_path / "int" / "tiny" / "weights.pt").exists()

    code, err = interrupt_after_first_checkpoint(spec, tmp_path / "kill", signal.SIGKILL)
    assert code == -signal.SIGKILL

    resumes = [
        lenetc(str(spec), "-o", str(tmp_path / d), "-q", "--resume") for d in ("int", "kill")
    ]
    for proc in [reference, *resumes]:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    # weights.pt's zip records carry the temporary file's name, so compare the tensors' bytes
    ref = tensor_bytes(tmp_path / "ref" / "tiny" / "weights.pt")
    for d in ("int", "kill"):
        assert tensor_bytes(tmp_path / d / "tiny" / "weights.pt") == ref, d
        metrics = (tmp_path / d / "tiny" / "metrics.jsonl").read_text().splitlines()
        assert len(metrics) == 60
    summary = json.loads((tmp_path / "ref" / "tiny" / "train.json").read_text())
    assert summary["epochs"] == 60 and summary["test_accuracy"] > 0.9


# --- the train: section -----------------------------------------------------------------------


def test_schedule_shorthand_and_early_stopping_needs_validation(tmp_path):
    from lenetc.errors import SpecError
    from lenetc.spec.load import load_spec

    head = "name: t\ninput: {shape: [4]}\nlayers:\n  - {type: linear, out_features: 2}\ntrain:\n"
    (tmp_path / "ok.yaml").write_text(head + "  schedule: cosine\n")
    assert load_spec(tmp_path / "ok.yaml").train.schedule.type == "cosine"
    bad = "  validation_split: 0\n  early_stopping: {patience: 2}\n"
    (tmp_path / "bad.yaml").write_text(head + bad)
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path / "bad.yaml")
    assert str(exc.value).startswith(
        f"{tmp_path / 'bad.yaml'}:7: train.early_stopping: watches the validation loss, but "
        "train.validation_split is 0"
    )
