"""Stage 4b, train: an nn.Module, a Dataset and a TrainConfig -> trained weights and metrics.

The seed's loop, done properly: seeded shuffled batches, forward, loss, backward, optimizer step,
a learning-rate schedule per epoch, validation and early stopping, one metrics.jsonl line and one
atomic checkpoint per epoch. Everything the loop uses comes in as arguments (TrainIO carries the
paths, the log, the progress switch and the stop poll), and it draws random numbers only from its
own generator and from a forked global RNG seeded from the spec, so that the same spec and seed
give the same weights run after run, and it can later run once per rank under torchrun.

Stopping: `io.stop()` is polled after every batch (build.py turns Ctrl-C into it). When it says
yes, the exact mid-epoch state is checkpointed and TrainingInterrupted is raised; fit(resume=True)
continues from that batch and ends with the weights an uninterrupted run gives. A loss that is not
finite (a learning rate too large, extreme data) stops the run at once with TrainingDiverged,
naming the epoch and batch; the last checkpoint, of the last good epoch, is left as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..artifacts import write_text
from ..errors import RuntimeFailure
from ..spec.config import TrainConfig
from . import distributed
from .checkpoint import load_checkpoint, restore, save_checkpoint
from .datasets import Dataset
from .distributed import Ranks
from .streaming import loader


@dataclass(frozen=True)
class TrainResult:
    epochs: int  # epochs run (fewer than asked when early stopping ended the run)
    best_epoch: int | None  # the epoch whose weights were kept, with early stopping
    stopped_early: bool
    test_accuracy: float
    test_loss: float
    seconds: float  # training and validation time, summed over resumed runs
    metrics: tuple[dict[str, Any], ...]
    rank_weights: tuple[str, ...] = ()  # distributed: sha256 of each rank's final weights


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request after checkpointing; str() says where, and how to resume.
    `resume_command` and `quiet` (a rank other than 0: it stops without a word) are known to
    whoever holds the command line, which raises `for_command(...)`."""

    def __init__(
        self,
        epoch: int,
        step: int,
        checkpoint: Path | None,
        resume_command: str | None = None,
        quiet: bool = False,
    ) -> None:
        super().__init__()
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        self.resume_command = resume_command
        self.quiet = quiet

    def for_command(self, resume_command: str, quiet: bool) -> TrainingInterrupted:
        """The same stop, knowing how to resume it and whether this process reports it."""
        return TrainingInterrupted(self.epoch, self.step, self.checkpoint, resume_command, quiet)

    def __str__(self) -> str:
        where = f"epoch {self.epoch}, batch {self.step}" if self.step else f"epoch {self.epoch - 1}"
        text = f"training interrupted after {where}; checkpoint saved to {self.checkpoint}"
        if self.resume_command:
            text += f"\n  resume with: {self.resume_command}"
        return text


class TrainingDiverged(RuntimeFailure):
    """The loss stopped being a finite number (exit 1); says where, and what was kept."""

    def __init__(self, epoch: int, where: str, loss: float, lr: float, kept: Path | None) -> None:
        keep = f"{kept} (the last good state) is kept" if kept else "no checkpoint was written"
        super().__init__(
            f"training diverged: the loss is {loss} at epoch {epoch}, {where} (lr {lr:.3g}); "
            f"{keep}; lower the learning rate (--lr), or check the data for extreme values"
        )
        self.epoch, self.where, self.loss, self.lr, self.kept = epoch, where, loss, lr, kept


def _never() -> bool:
    return False


@dataclass(frozen=True)
class TrainIO:
    """Where training writes, what it says, and what may stop it; none of it changes the weights."""

    metrics: Path | None = None
    checkpoint: Path | None = None
    resume: bool = False  # continue from `checkpoint` when it exists
    fingerprint: str = ""  # more identity a checkpoint must match (e.g. model.py's hash)
    log: Callable[[str], None] = print
    progress: bool = False  # a tqdm bar per epoch on stderr
    stop: Callable[[], bool] = _never  # polled after every batch
    device: str = "cpu"  # where to train (device.py chooses); the weights come back there
    # distributed.Ranks under torchrun: the batch order is then DistributedSampler's, and the
    # stop poll, metrics and checkpoints are shared across ranks. None: one process, own order.
    ranks: Ranks | None = None


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.type == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=o.weight_decay,
        )
    cls = torch.optim.Adam if o.type == "adam" else torch.optim.AdamW
    return cls(model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Stepped once per epoch: step multiplies by gamma every step_size epochs; cosine anneals
    to 0 over all epochs."""
    s = cfg.schedule
    if s.type == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if s.type == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return None


def loss_fn(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if name == "cross_entropy":
        return F.cross_entropy(out, y)
    if name == "nll":  # expects log-probabilities: the spec ends with log_softmax
        return F.nll_loss(out, y)
    return F.mse_loss(out, F.one_hot(y, out.shape[1]).to(out.dtype))  # the seed's MSELoss


def evaluate(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    loss: str,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    ranks: Ranks | None = None,
) -> tuple[float, float]:
    """(mean loss, accuracy) in eval mode; NaN for an empty split. With ranks, each rank takes
    every world-th sample and the sums are added up across ranks."""
    if len(x) == 0:
        return math.nan, math.nan
    model.eval()
    total, correct = 0.0, 0
    mine = None if ranks is None else np.arange(ranks.rank, len(x), ranks.world)
    count = len(x) if mine is None else len(mine)
    with torch.no_grad():
        for i in range(0, count, batch_size):
            part = slice(i, i + batch_size) if mine is None else mine[i : i + batch_size]
            xb = torch.from_numpy(np.asarray(x[part])).to(device)
            yb = torch.from_numpy(y[part]).to(device)
            out = model(xb)
            total += float(loss_fn(loss, out, yb)) * len(xb)
            correct += int((out.argmax(1) == yb).sum())
    if ranks is not None:
        total, correct, count = distributed.sum_all([total, correct, count])
    return total / len(x), correct / len(x)


@dataclass
class _Loop:
    """The loop's own counters: with the model, optimizer, scheduler and RNGs, the whole state."""

    epoch: int = 0  # completed epochs
    step: int = 0  # batches done in the current epoch
    order: torch.Tensor | None = None  # the current epoch's shuffle, drawn at its start
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    epoch_seconds: float = 0.0
    seconds: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early: bool = False
    rank_rng: list[Any] | None = None  # distributed: every rank's RNG states (dropout)

    def state(self) -> dict[str, Any]:
        return dict(self.__dict__)


def identity(model: nn.Module, data: Dataset, cfg: TrainConfig, extra: str = "") -> dict[str, str]:
    """What a checkpoint must agree with, part by part (so a refusal can say which part differs):
    each train: setting but `workers` (how many processes read batches changes nothing), the
    model source (`extra`), the parameter shapes and the data itself."""
    flat = _flat(dataclasses.asdict(cfg)).items()
    parts = {".".join(k): repr(v) for k, v in flat if k[-1] != "line" and k != ("workers",)}
    parts["model.py sha256"] = extra
    shapes = hashlib.sha256()
    for name, t in model.state_dict().items():
        shapes.update(f"{name}{tuple(t.shape)}".encode())
    parts["parameter shapes sha256"] = shapes.hexdigest()
    for split in ("train", "val"):
        h = hashlib.sha256()
        for a in (getattr(data, f"x_{split}"), getattr(data, f"y_{split}")):
            streamed = getattr(a, "identity", None)  # a streamed split: its file, rows and stats
            h.update(streamed().encode() if streamed else np.ascontiguousarray(a).tobytes())
        parts[f"{split} data sha256"] = h.hexdigest()
    return parts


def fingerprint(parts: dict[str, str]) -> str:
    """One hash of an `identity`."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _flat(value: Any, key: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(value, dict):
        return {k: v for name, sub in value.items() for k, v in _flat(sub, key + (name,)).items()}
    return {key: value}


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig, io: TrainIO = TrainIO()) -> TrainResult:
    """Train `model` in place per `cfg`; with io.resume, continue from io.checkpoint."""
    # fork_rng: dropout draws from the global RNG; seed it here and give it back afterwards, so
    # the weights depend on the spec's seed alone and the caller's RNG is left as it was.
    device = torch.device(io.device)
    rank = io.ranks.rank if io.ranks is not None else 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed + rank)  # each rank its own dropout masks
        return _fit(model, data, cfg, io)


@dataclass(frozen=True)
class _Run:
    """What one training run holds fixed while `_Loop` changes: the model (and `trainee`, the
    same model wrapped for DDP under torchrun), the optimizer and schedule, the batch order's
    generator, the data, the settings, and the identity a checkpoint must match."""

    model: nn.Module
    trainee: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    data: Dataset
    cfg: TrainConfig
    io: TrainIO
    stamp: str
    parts: dict[str, str]
    kept: list[Path]  # the checkpoint this run saved or resumed from, once there is one

    @property
    def device(self) -> torch.device:
        return torch.device(self.io.device)

    @property
    def ranks(self) -> Ranks | None:
        return self.io.ranks

    @property
    def main(self) -> bool:
        return self.ranks is None or self.ranks.main

    @property
    def objects(self) -> dict[str, Any]:
        """What a checkpoint holds besides the loop's counters."""
        return dict(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            generator=self.generator,
        )


def _fit(model: nn.Module, data: Dataset, cfg: TrainConfig, io: TrainIO) -> TrainResult:
    run, loop = _start(model, data, cfg, io)
    while loop.epoch < cfg.epochs and not loop.stopped_early:
        _epoch(run, loop)
        if _stop_requested(run) and loop.epoch < cfg.epochs and not loop.stopped_early:
            distributed.barrier()
            raise TrainingInterrupted(loop.epoch + 1, 0, io.checkpoint)
    return _finish(run, loop)


def _start(model: nn.Module, data: Dataset, cfg: TrainConfig, io: TrainIO) -> tuple[_Run, _Loop]:
    """The run's fixed parts and its loop, fresh or resumed from io.checkpoint."""
    device, ranks = torch.device(io.device), io.ranks
    model.to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    objects = dict(model=model, optimizer=optimizer, scheduler=scheduler, generator=generator)
    parts = identity(model, data, cfg, io.fingerprint)
    if ranks is not None:
        parts["world size"] = str(ranks.world)  # the order of samples depends on it
    stamp = fingerprint(parts)
    loop = _Loop()
    kept: list[Path] = []
    if io.resume:
        resumed = _resume(io, stamp, parts, objects, ranks, device)
        if resumed is not None:
            loop = resumed
            kept.append(io.checkpoint)
    trainee = distributed.wrap(model, ranks)  # after a resume: DDP starts from rank 0's weights
    run = _Run(model, trainee, optimizer, scheduler, generator, data, cfg, io, stamp, parts, kept)
    return run, loop


def _epoch(run: _Run, loop: _Loop) -> None:
    """One epoch from where `loop` stands: its batches, validation, the schedule's step, the
    metrics line, a checkpoint and the log line. Raises TrainingInterrupted (a stop between
    batches) or TrainingDiverged."""
    cfg, io, ranks, device = run.cfg, run.io, run.ranks, run.device
    epoch = loop.epoch + 1
    batches = _batches(run, loop)
    stream = loader(
        run.data.x_train,
        run.data.y_train,
        batches[loop.step :],
        workers=cfg.workers,
        pin=device.type == "cuda",
    )
    run.trainee.train()
    lr = run.optimizer.param_groups[0]["lr"]
    bar = tqdm(
        total=len(batches),
        initial=loop.step,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
        file=sys.stderr,
        disable=not io.progress,
    )
    t0 = time.perf_counter()
    for b, (xb, yb) in enumerate(stream, start=loop.step):
        loss = _step(run, loop, xb, yb)
        if loss is not None:
            bar.close()
            where = f"batch {b + 1} of {len(batches)}"
            raise _diverged(run, epoch, where, loss, lr)
        loop.step = b + 1
        bar.update(1)
        if io.progress:
            bar.set_postfix(
                loss=f"{loop.loss_sum / loop.seen:.4f}",
                acc=f"{loop.correct / loop.seen:.2%}",
                refresh=False,
            )
        if _stop_requested(run) and loop.step < len(batches):
            bar.close()
            raise _interrupt(run, loop, epoch, time.perf_counter() - t0)
    bar.close()
    loss_sum, correct, seen = _pooled(loop, ranks)
    val_loss, val_acc = evaluate(
        run.model, run.data.x_val, run.data.y_val, cfg.loss, device=device, ranks=ranks
    )
    if len(run.data.x_val) and not math.isfinite(val_loss):  # pooled: the same on every rank
        raise _diverged(run, epoch, "on the validation split", val_loss, lr)
    if run.scheduler is not None:
        run.scheduler.step()
    seconds = loop.epoch_seconds + time.perf_counter() - t0
    record = {
        "epoch": epoch,
        "train_loss": loss_sum / seen,
        "train_accuracy": correct / seen,
        "val_loss": _finite(val_loss),
        "val_accuracy": _finite(val_acc),
        "lr": lr,
        "seconds": round(seconds, 3),
    }
    loop.metrics.append(record)
    _early_stopping(loop, run.model, cfg, epoch, val_loss)
    loop.epoch, loop.step, loop.order = epoch, 0, None
    loop.loss_sum, loop.correct, loop.seen, loop.epoch_seconds = 0.0, 0, 0, 0.0
    loop.seconds += seconds
    if io.metrics is not None and run.main:
        write_text(io.metrics, "".join(json.dumps(r) + "\n" for r in loop.metrics))
    _save(run, loop)
    io.log(
        f"epoch {epoch:>3}/{cfg.epochs}  train loss {record['train_loss']:.4f}  "
        f"val loss {val_loss:.4f}  val acc {val_acc:.2%}  lr {lr:.3g}  {seconds:.1f} s"
    )


def _batches(run: _Run, loop: _Loop) -> list:
    """The epoch's batches of row positions: this process's shuffle (drawn once per epoch and
    kept in the loop, so a resumed epoch continues it), or DistributedSampler's under torchrun."""
    n = len(run.data.y_train)
    ranks = run.ranks
    per_rank = run.cfg.batch_size // (ranks.world if ranks is not None else 1)
    if ranks is not None:
        return distributed.rank_batches(n, ranks, run.cfg.seed, loop.epoch, per_rank)
    if loop.order is None:  # a fresh epoch, not one resumed mid-way
        loop.order = torch.randperm(n, generator=run.generator)
    order = loop.order.numpy()
    return [order[i : i + per_rank] for i in range(0, n, per_rank)]


def _step(run: _Run, loop: _Loop, xb: torch.Tensor, yb: torch.Tensor) -> float | None:
    """One optimizer step on a batch, added to the epoch's sums; the loss instead when it is not
    a finite number (on any rank), and nothing was changed."""
    device = run.device
    xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
    run.optimizer.zero_grad(set_to_none=True)
    out = run.trainee(xb)
    loss = loss_fn(run.cfg.loss, out, yb)
    if _non_finite(run, float(loss.detach())):
        return float(loss.detach())
    loss.backward()
    run.optimizer.step()
    loop.loss_sum += float(loss.detach()) * len(yb)
    loop.correct += int((out.detach().argmax(1) == yb).sum())
    loop.seen += len(yb)
    return None


def _interrupt(run: _Run, loop: _Loop, epoch: int, seconds: float) -> TrainingInterrupted:
    """A stop between batches: the epoch so far checkpointed on every rank, then the exception
    that says where."""
    loop.epoch_seconds += seconds
    loop.loss_sum, loop.correct, loop.seen = _pooled(loop, run.ranks, keep_on_main=True)
    _save(run, loop)
    distributed.barrier()  # no rank leaves before the checkpoint is written
    return TrainingInterrupted(epoch, loop.step, run.io.checkpoint)


def _save(run: _Run, loop: _Loop) -> None:
    """Every rank hands in its RNG states; rank 0 alone writes the file."""
    loop.rank_rng = distributed.gather(_rng_states(run.device))
    checkpoint = run.io.checkpoint
    if checkpoint is not None and run.main:
        save_checkpoint(
            checkpoint, fingerprint=run.stamp, identity=run.parts, loop=loop.state(), **run.objects
        )
    if checkpoint is not None:
        run.kept[:] = [checkpoint]


def _diverged(run: _Run, epoch: int, where: str, loss: float, lr: float) -> TrainingDiverged:
    # an older build's checkpoint.pt is not this run's: only name our own
    return TrainingDiverged(epoch, where, loss, lr, run.kept[0] if run.kept else None)


def _non_finite(run: _Run, value: float) -> bool:
    """Every rank stops together, or the others would wait for it forever."""
    bad = not math.isfinite(value)
    return distributed.any_rank(bad) if run.ranks is not None else bad


def _stop_requested(run: _Run) -> bool:
    return distributed.any_rank(run.io.stop()) if run.ranks is not None else run.io.stop()


def _finish(run: _Run, loop: _Loop) -> TrainResult:
    """Early stopping's best weights back, the test split, and (distributed) proof that every
    rank holds the same weights."""
    model, cfg, io, ranks = run.model, run.cfg, run.io, run.ranks
    if cfg.patience is not None and loop.best_state is not None:
        model.load_state_dict(loop.best_state)  # early stopping keeps the best validation epoch
        if loop.stopped_early:
            io.log(f"early stopping after epoch {loop.epoch}: kept epoch {loop.best_epoch}")
    test_loss, test_acc = evaluate(
        model, run.data.x_test, run.data.y_test, cfg.loss, device=run.device, ranks=ranks
    )
    digests: tuple[str, ...] = ()
    if ranks is not None:
        digests = tuple(distributed.gather(distributed.weights_digest(model)))
        if len(set(digests)) != 1:
            raise RuntimeFailure(
                "the ranks ended training with different weights ("
                + ", ".join(f"rank {r}: {d[:12]}" for r, d in enumerate(digests))
                + "); this is a bug in the distributed set-up, please report it"
            )
    return TrainResult(
        loop.epoch,
        loop.best_epoch,
        loop.stopped_early,
        test_acc,
        test_loss,
        loop.seconds,
        tuple(loop.metrics),
        digests,
    )


def _pooled(loop: _Loop, ranks: Ranks | None, keep_on_main: bool = False) -> tuple:
    """The epoch's running sums (loss, correct, seen) added up across ranks. keep_on_main: rank
    0 gets the totals and the others 0, as a checkpoint keeps them, so that pooling again after
    a resume counts nothing twice."""
    sums = (loop.loss_sum, loop.correct, loop.seen)
    if ranks is None:
        return sums
    total, correct, seen = distributed.sum_all(list(sums))
    keep = 0 if keep_on_main and not ranks.main else 1
    return total * keep, int(correct) * keep, int(seen) * keep


def _rng_states(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _resume(
    io: TrainIO, stamp: str, parts: dict, objects: dict, ranks: Ranks | None, device
) -> _Loop | None:
    """The loop restored from io.checkpoint (rank 0 reads it and hands it to the others)."""
    state, problem = None, None
    if ranks is None or ranks.main:
        if io.checkpoint is not None and io.checkpoint.exists():
            try:
                state = load_checkpoint(io.checkpoint, stamp, parts)
            except RuntimeFailure as exc:
                problem = str(exc)
    if ranks is not None:
        state, problem = distributed.broadcast((state, problem))
    if problem is not None:
        raise RuntimeFailure(problem)
    if state is None:
        io.log(f"no checkpoint at {io.checkpoint}; starting from epoch 1")
        return None
    loop = _Loop(**restore(state, **objects))
    if loop.rank_rng is not None:
        rank = ranks.rank if ranks is not None else 0
        cpu, cuda = loop.rank_rng[rank]
        torch.set_rng_state(cpu)
        if cuda is not None and device.type == "cuda":
            torch.cuda.set_rng_state(cuda, device)
    if ranks is not None and not ranks.main:
        loop.loss_sum, loop.correct, loop.seen = 0.0, 0, 0  # rank 0 holds the pooled sums
    io.log(f"resuming from {io.checkpoint}: {_position(loop)}")
    return loop


def _early_stopping(
    loop: _Loop, model: nn.Module, cfg: TrainConfig, epoch: int, val_loss: float
) -> None:
    if cfg.patience is None:
        return
    if val_loss < loop.best_loss:  # NaN never improves
        loop.best_loss, loop.best_epoch, loop.bad_epochs = val_loss, epoch, 0
        loop.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    else:
        loop.bad_epochs += 1
        loop.stopped_early = loop.bad_epochs >= cfg.patience


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def _position(loop: _Loop) -> str:
    if loop.step:
        return f"epoch {loop.epoch + 1}, batch {loop.step}"
    return f"{loop.epoch} epochs done"
