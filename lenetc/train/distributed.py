"""Stage 4 helper, distributed: one training process per rank under torchrun, with torch's own
DistributedDataParallel, and the few collectives the loop needs.

Takes the environment torchrun (torch.distributed.run / its elastic agent) gives each worker
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); returns `Ranks`, or None for a plain one-process
build. `session` joins the process group (gloo on the CPU, NCCL on CUDA) and leaves it; `wrap`
puts the model in DDP; `rank_batches` is this rank's share of an epoch, drawn by a
DistributedSampler (seed = the spec's seed, set_epoch each epoch): the sampler shuffles with
randperm(n, seed + epoch) and hands rank r every world-th sample from position r, so global batch
k (the k-th batch of every rank together) holds the samples at positions k*B to (k+1)*B of that
permutation - exactly batch k of one process that uses the same permutation (`Ranks(0, 1)`), when
the training split divides by the world size (otherwise the sampler repeats up to world-1 samples
to even the ranks out, as torch documents).

Failures: a collective that fails because a peer died becomes a RuntimeFailure in one line; SIGTERM
(what the elastic agent sends the other ranks when one fails) raises SystemExit, so a file being
written is cleaned away instead of left half-written. The agent bounds the time all of this takes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import RuntimeFailure, UsageError

TIMEOUT = datetime.timedelta(minutes=10)  # a collective that waits longer is a hang, not a job


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: its global rank, the world size, its rank on this node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env(env: dict[str, str] | None = None) -> Ranks | None:
    """The rank torchrun gave this process, or None outside torchrun."""
    env = os.environ if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env or "TORCHELASTIC_RUN_ID" not in env:
        return None
    return Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))


def check_batch(batch_size: int, ranks: Ranks | None, spec_path: str) -> int:
    """The per-rank batch: train.batch_size is the global batch and must divide by the world."""
    if ranks is None:
        return batch_size
    if batch_size % ranks.world:
        lo = batch_size - batch_size % ranks.world
        options = ", ".join(str(b) for b in (lo, lo + ranks.world) if b > 0)
        raise UsageError(
            f"{spec_path}: train.batch_size {batch_size} does not divide by the world size "
            f"{ranks.world} ({ranks.world} processes); it is the global batch, and each rank "
            f"takes batch_size / world size samples per step\n  hint: set batch_size to "
            f"{options}, or run a number of processes that divides {batch_size}"
        )
    return batch_size // ranks.world


_active: dict[str, Any] = {}


@contextlib.contextmanager
def session(ranks: Ranks | None, device) -> Iterator[None]:
    """Join the process group for the length of training (nothing to do outside torchrun; a
    torchrun job of one rank joins too, so that it runs the same code as a larger one)."""
    if ranks is None:
        yield
        return
    import torch
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        extra = {"device_id": device} if device.type == "cuda" else {}  # NCCL: bind the GPU
        dist.init_process_group(
            backend, timeout=TIMEOUT, rank=ranks.rank, world_size=ranks.world, **extra
        )
    except Exception as exc:
        raise RuntimeFailure(
            f"rank {ranks.rank}: cannot join the job ({_library_message(exc)})"
        ) from None
    _active.update(device=device, ranks=ranks)
    try:
        with _peer_failures(ranks):
            yield
            dist.barrier()
    finally:
        _active.clear()
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
        signal.signal(signal.SIGTERM, previous)


def backend_name(device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def _peer_failures(ranks: Ranks) -> Iterator[None]:
    import torch.distributed as dist

    try:
        yield
    except (dist.DistError, RuntimeError) as exc:
        if isinstance(exc, dist.DistError) or "gloo" in str(exc).lower() or "nccl" in str(exc):
            if os.environ.get("LENETC_RESUME_COMMAND"):  # lenetc's launcher names the rank
                raise SystemExit(1) from None  # that failed first; this one only lost it
            raise RuntimeFailure(
                f"rank {ranks.rank}: another rank stopped answering ({_library_message(exc)}); "
                "the job stops"
            ) from None
        raise


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signal.SIGTERM)


def _library_message(exc: BaseException) -> str:
    """The collective library's message without its source location and boilerplate advice:
    its first line, at most 300 characters (more than errors.first_line, which keeps both)."""
    text = re.sub(r"\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", str(exc)).strip()
    text = text.split(". This is typically")[0]
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _world() -> int:
    ranks = _active.get("ranks")
    return ranks.world if ranks is not None else 1


def wrap(model, ranks: Ranks | None):
    """The model DDP trains, in a process group (the module itself outside one)."""
    if not _active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = _active["device"]
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any (e.g. a stop request that reached one rank)."""
    if _world() == 1:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=_active["device"])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_all(values: list[float]) -> list[float]:
    """Element-wise sums over the ranks, in float64."""
    if _world() == 1:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=_active["device"])
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if _world() == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * _world()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if _world() == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _world() > 1:
        import torch.distributed as dist

        dist.barrier()


class _Count:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def rank_batches(n: int, ranks: Ranks, seed: int, epoch: int, per_rank: int) -> list[np.ndarray]:
    """This rank's batches of epoch `epoch` (0-based), as DistributedSampler deals them."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        _Count(n), num_replicas=ranks.world, rank=ranks.rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    idx = np.fromiter(iter(sampler), dtype=np.int64, count=len(sampler))
    return [idx[i : i + per_rank] for i in range(0, len(idx), per_rank)]


def weights_digest(model) -> str:
    """sha256 of the weights' bytes: every rank must end with the same."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def resume_command(default: str) -> str:
    """How to resume: the launcher's own command when lenetc started the job."""
    given = os.environ.get("LENETC_RESUME_COMMAND")
    if given:
        return given
    if from_env() is None:
        return default
    return f"torchrun <the same options> -m {default.removeprefix('lenetc ')}"
