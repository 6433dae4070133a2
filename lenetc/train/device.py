"""Stage 4 helper, device: `train.device` (auto | cpu | cuda) and the rank's place -> a torch device
and one line saying why.

Takes the requested device, where it was asked for (the spec or --device) and, under torchrun, the
local rank; returns a DeviceChoice: the torch.device to train on and the reason, as the build line
prints it ("cuda:0 (auto: NVIDIA H200)" or "cpu (auto: torch 2.13.0+cpu is built without CUDA)").
`cuda` asked for where it cannot run is a RuntimeFailure with the reason. CUDA counts as usable
only when torch sees a device and can put a tensor on it: a driver or architecture mismatch is
"unavailable", with torch's first line, not a crash later in training. On the CPU nothing changes:
the same weights as before, run after run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import RuntimeFailure


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    why: str  # the reason, for the build line

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        return f"{self.device} ({self.why})"


def cuda_problem(index: int = 0) -> str | None:
    """Why torch cannot train on CUDA device `index` here, or None when it can."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    count = torch.cuda.device_count()
    if index >= count:  # never a silent fallback: the other ranks would be on CUDA
        raise RuntimeFailure(
            f"rank with local rank {index} needs CUDA device {index}, but torch sees {count}: "
            f"run at most {count} processes per node on CUDA, or set device: cpu"
        )
    try:
        _probe(index)
    except Exception as exc:  # driver/arch mismatch, out of memory, a busy exclusive device...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"CUDA device {index} cannot be used ({first})"
    return None


def _probe(index: int) -> None:
    """Put one tensor on the device: the cheapest proof that training can run there."""
    torch.zeros(1, device=f"cuda:{index}")


def choose_device(
    requested: str, asked_by: str = "train.device", local_rank: int = 0
) -> DeviceChoice:
    """auto: CUDA when usable (device `local_rank`: one GPU per rank), else the CPU."""
    if requested == "cpu":
        return DeviceChoice(torch.device("cpu"), f"{asked_by}: cpu")
    problem = cuda_problem(local_rank)
    if requested == "cuda":
        if problem is not None:
            raise RuntimeFailure(
                f"{asked_by} is cuda, but CUDA is unavailable: {problem}; "
                "use device auto or cpu to train on the CPU"
            )
        return DeviceChoice(torch.device("cuda", local_rank), f"{asked_by}: {_name(local_rank)}")
    if problem is None:
        return DeviceChoice(torch.device("cuda", local_rank), f"auto: {_name(local_rank)}")
    return DeviceChoice(torch.device("cpu"), f"auto: no usable CUDA, {problem}")


def _name(index: int) -> str:
    try:
        return torch.cuda.get_device_name(index)
    except Exception:  # the name is for people; never fail a build over it
        return f"CUDA device {index}"
