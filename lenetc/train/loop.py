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
from .checkpoint import load_checkpoint, restore, save_checkpoint
from .datasets import Dataset


@dataclass(frozen=True)
class TrainResult:
    epochs: int  # epochs run (fewer than asked when early stopping ended the run)
    best_epoch: int | None  # the epoch whose weights were kept, with early stopping
    stopped_early: bool
    test_accuracy: float
    test_loss: float
    seconds: float  # training and validation time, summed over resumed runs
    metrics: tuple[dict[str, Any], ...]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request after checkpointing; str() says where, and how to resume."""

    def __init__(self, epoch: int, step: int, checkpoint: Path | None) -> None:
        super().__init__()
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        self.resume_command: str | None = None  # filled in by whoever knows the command line

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
        self.epoch = epoch


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
    model: nn.Module, x: np.ndarray, y: np.ndarray, loss: str, batch_size: int = 512
) -> tuple[float, float]:
    """(mean loss, accuracy) in eval mode; NaN for an empty split."""
    if len(x) == 0:
        return math.nan, math.nan
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i : i + batch_size])
            yb = torch.from_numpy(y[i : i + batch_size])
            out = model(xb)
            total += float(loss_fn(loss, out, yb)) * len(xb)
            correct += int((out.argmax(1) == yb).sum())
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

    def state(self) -> dict[str, Any]:
        return dict(self.__dict__)


def identity(model: nn.Module, data: Dataset, cfg: TrainConfig, extra: str = "") -> dict[str, str]:
    """What a checkpoint must agree with, part by part (so a refusal can say which part differs):
    each train: setting, the model source (`extra`), the parameter shapes and the data itself."""
    parts = {k: repr(v) for k, v in _flat(dataclasses.asdict(cfg)).items() if k[-1] != "line"}
    parts = {".".join(k): v for k, v in parts.items()}
    parts["model.py sha256"] = extra
    shapes = hashlib.sha256()
    for name, t in model.state_dict().items():
        shapes.update(f"{name}{tuple(t.shape)}".encode())
    parts["parameter shapes sha256"] = shapes.hexdigest()
    for split in ("train", "val"):
        h = hashlib.sha256()
        for a in (getattr(data, f"x_{split}"), getattr(data, f"y_{split}")):
            h.update(np.ascontiguousarray(a).tobytes())
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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return _fit(model, data, cfg, io)


def _fit(model: nn.Module, data: Dataset, cfg: TrainConfig, io: TrainIO) -> TrainResult:
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    objects = dict(model=model, optimizer=optimizer, scheduler=scheduler, generator=generator)
    parts = identity(model, data, cfg, io.fingerprint)
    stamp = fingerprint(parts)
    loop = _Loop()
    kept: list[Path] = []  # the checkpoint this run saved or resumed from, once there is one
    if io.resume and io.checkpoint is not None and io.checkpoint.exists():
        loop = _Loop(**restore(load_checkpoint(io.checkpoint, stamp, parts), **objects))
        kept.append(io.checkpoint)
        io.log(f"resuming from {io.checkpoint}: {_position(loop)}")
    elif io.resume:
        io.log(f"no checkpoint at {io.checkpoint}; starting from epoch 1")

    def save() -> None:
        if io.checkpoint is not None:
            save_checkpoint(
                io.checkpoint, fingerprint=stamp, identity=parts, loop=loop.state(), **objects
            )
            kept[:] = [io.checkpoint]

    def diverged(epoch: int, where: str, loss: float) -> TrainingDiverged:
        bar.close()  # an older build's checkpoint.pt is not this run's: only name our own
        return TrainingDiverged(epoch, where, loss, lr, kept[0] if kept else None)

    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    batches = math.ceil(len(x) / cfg.batch_size)
    while loop.epoch < cfg.epochs and not loop.stopped_early:
        epoch = loop.epoch + 1
        if loop.order is None:  # a fresh epoch, not one resumed mid-way
            loop.order = torch.randperm(len(x), generator=generator)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(
            total=batches,
            initial=loop.step,
            desc=f"epoch {epoch}/{cfg.epochs}",
            unit="batch",
            leave=False,
            file=sys.stderr,
            disable=not io.progress,
        )
        t0 = time.perf_counter()
        for b in range(loop.step, batches):
            idx = loop.order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            optimizer.zero_grad(set_to_none=True)
            out = model(x[idx])
            loss = loss_fn(cfg.loss, out, y[idx])
            if not math.isfinite(float(loss.detach())):
                raise diverged(epoch, f"batch {b + 1} of {batches}", float(loss.detach()))
            loss.backward()
            optimizer.step()
            loop.step = b + 1
            loop.loss_sum += float(loss.detach()) * len(idx)
            loop.correct += int((out.detach().argmax(1) == y[idx]).sum())
            loop.seen += len(idx)
            bar.update(1)
            if io.progress:
                bar.set_postfix(
                    loss=f"{loop.loss_sum / loop.seen:.4f}",
                    acc=f"{loop.correct / loop.seen:.2%}",
                    refresh=False,
                )
            if io.stop() and loop.step < batches:
                bar.close()
                loop.epoch_seconds += time.perf_counter() - t0
                save()
                raise TrainingInterrupted(epoch, loop.step, io.checkpoint)
        bar.close()
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val, cfg.loss)
        if len(data.x_val) and not math.isfinite(val_loss):
            raise diverged(epoch, "on the validation split", val_loss)
        if scheduler is not None:
            scheduler.step()
        seconds = loop.epoch_seconds + time.perf_counter() - t0
        record = {
            "epoch": epoch,
            "train_loss": loop.loss_sum / loop.seen,
            "train_accuracy": loop.correct / loop.seen,
            "val_loss": _finite(val_loss),
            "val_accuracy": _finite(val_acc),
            "lr": lr,
            "seconds": round(seconds, 3),
        }
        loop.metrics.append(record)
        _early_stopping(loop, model, cfg, epoch, val_loss)
        loop.epoch, loop.step, loop.order = epoch, 0, None
        loop.loss_sum, loop.correct, loop.seen, loop.epoch_seconds = 0.0, 0, 0, 0.0
        loop.seconds += seconds
        if io.metrics is not None:
            write_text(io.metrics, "".join(json.dumps(r) + "\n" for r in loop.metrics))
        save()
        io.log(
            f"epoch {epoch:>3}/{cfg.epochs}  train loss {record['train_loss']:.4f}  "
            f"val loss {val_loss:.4f}  val acc {val_acc:.2%}  lr {lr:.3g}  {seconds:.1f} s"
        )
        if io.stop() and loop.epoch < cfg.epochs and not loop.stopped_early:
            raise TrainingInterrupted(loop.epoch + 1, 0, io.checkpoint)
    if cfg.patience is not None and loop.best_state is not None:
        model.load_state_dict(loop.best_state)  # early stopping keeps the best validation epoch
        if loop.stopped_early:
            io.log(f"early stopping after epoch {loop.epoch}: kept epoch {loop.best_epoch}")
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test, cfg.loss)
    return TrainResult(
        loop.epoch,
        loop.best_epoch,
        loop.stopped_early,
        test_acc,
        test_loss,
        loop.seconds,
        tuple(loop.metrics),
    )


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
