"""train.device: which device trains and why, with torch.cuda mocked where this machine has none.

There is no GPU here, so the CUDA branches are driven by replacing what torch reports (is CUDA
built in, is a device visible, how many, can a tensor go there); the real CPU answers are checked
as they are. The build line and train.json carry the choice (tests/test_distributed.py reads them).
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from lenetc.cli import main
from lenetc.errors import RuntimeFailure
from lenetc.train import device as dev
from lenetc.train.device import choose_device, cuda_problem


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch as a CUDA build that sees two devices named 'Fake GPU <n>'."""
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
    monkeypatch.setattr(dev, "_probe", lambda index: None)
    return monkeypatch


def test_on_this_cpu_machine_auto_is_the_cpu_and_says_why():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the mocked tests below cover the choice")
    choice = choose_device("auto")
    assert choice.device == torch.device("cpu")
    problem = cuda_problem()
    assert problem is not None and choice.why == f"auto: no usable CUDA, {problem}"
    if torch.version.cuda is None:
        assert problem == f"torch {torch.__version__} is built without CUDA"
    with pytest.raises(RuntimeFailure) as exc:
        choose_device("cuda", "--device")
    assert str(exc.value) == (
        f"--device is cuda, but CUDA is unavailable: {problem}; "
        "use device auto or cpu to train on the CPU"
    )
    assert choose_device("cpu").describe() == "cpu (train.device: cpu)"


def test_auto_takes_cuda_when_torch_can_use_it(fake_cuda):
    choice = choose_device("auto")
    assert choice.device == torch.device("cuda", 0) and choice.is_cuda
    assert choice.describe() == "cuda:0 (auto: Fake GPU 0)"
    # one GPU per rank: local rank 1 trains on device 1
    assert choose_device("auto", local_rank=1).device == torch.device("cuda", 1)
    assert choose_device("cuda", "--device", 1).why == "--device: Fake GPU 1"
    assert choose_device("cpu").device == torch.device("cpu")  # asked for: never overridden


def test_more_ranks_than_gpus_is_an_error_not_a_silent_cpu_rank(fake_cuda):
    with pytest.raises(
        RuntimeFailure, match=r"needs CUDA device 2, but torch sees 2: run at most 2"
    ):
        choose_device("auto", local_rank=2)


@pytest.mark.parametrize(
    "setup, reason",
    [
        ({"cuda": None}, "is built without CUDA"),
        ({"available": False}, "(CUDA 12.8) sees no CUDA device"),
        (
            {"probe": RuntimeError("CUDA error: no kernel image is available\nmore")},
            "CUDA device 0 cannot be used (CUDA error: no kernel image is available)",
        ),
    ],
    ids=["cpu-build", "no-device", "unusable-device"],
)
def test_auto_falls_back_to_the_cpu_with_the_reason(fake_cuda, setup, reason):
    if "cuda" in setup:
        fake_cuda.setattr(torch.version, "cuda", setup["cuda"])
    if "available" in setup:
        fake_cuda.setattr(torch.cuda, "is_available", lambda: setup["available"])
    if "probe" in setup:

        def probe(index):
            raise setup["probe"]

        fake_cuda.setattr(dev, "_probe", probe)
    choice = choose_device("auto")
    assert choice.device == torch.device("cpu")
    assert choice.why.startswith("auto: no usable CUDA, ") and choice.why.endswith(reason)
    with pytest.raises(RuntimeFailure, match="train.device is cuda, but CUDA is unavailable"):
        choose_device("cuda")


def test_cli_device_cuda_without_cuda_exits_1_in_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: t\ninput: {shape: [4]}\nlayers:\n  - {type: linear, out_features: 2}\n"
        "train: {dataset: {name: synthetic, samples: 20}, epochs: 1, device: cpu}\n"
    )
    result = CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path), "--device", "cuda"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --device is cuda, but CUDA is unavailable: torch ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t" / "weights.pt").exists()


def test_train_device_and_workers_are_spec_keys(tmp_path):
    from lenetc.errors import SpecError
    from lenetc.spec.load import load_spec

    head = "name: t\ninput: {shape: [4]}\nlayers:\n  - {type: linear, out_features: 2}\ntrain:\n"
    (tmp_path / "ok.yaml").write_text(head + "  device: cuda\n  workers: 2\n")
    cfg = load_spec(tmp_path / "ok.yaml").train
    assert (cfg.device, cfg.workers) == ("cuda", 2)
    assert load_spec(tmp_path / "ok.yaml").train.device == "cuda"
    (tmp_path / "bad.yaml").write_text(head + "  device: gpu\n")
    with pytest.raises(SpecError, match=r"bad.yaml:6: .*expected one of auto, cpu, cuda"):
        load_spec(tmp_path / "bad.yaml")
