"""Stage 4b, train: an nn.Module, a Dataset and a TrainConfig -> trained weights and metrics.

The seed's loop, done properly: iterate over the dataset in seeded shuffled batches, forward,
loss, backward, optimizer step. Writes one JSON line per epoch to metrics.jsonl. No global state:
the loop takes everything it uses as arguments, so that it can later run once per rank.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import write_text
from .config import TrainConfig
from .datasets import Dataset


@dataclass(frozen=True)
class TrainResult:
    epochs: int
    test_accuracy: float
    test_loss: float
    seconds: float


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


def loss_fn(name: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if name == "cross_entropy":
        return F.cross_entropy(logits, y)
    if name == "nll":
        return F.nll_loss(logits, y)
    return F.mse_loss(logits, F.one_hot(y, logits.shape[1]).to(logits.dtype))


def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, loss: str, batch_size: int = 512
) -> tuple[float, float]:
    """(mean loss, accuracy) in eval mode."""
    if len(x) == 0:
        return float("nan"), float("nan")
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = (
                torch.from_numpy(x[i : i + batch_size]),
                torch.from_numpy(y[i : i + batch_size]),
            )
            out = model(xb)
            total += float(loss_fn(loss, out, yb)) * len(xb)
            correct += int((out.argmax(1) == yb).sum())
    return total / len(x), correct / len(x)


def fit(
    model: nn.Module, data: Dataset, cfg: TrainConfig, *, metrics_path: Path, log=print
) -> TrainResult:
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    lines: list[str] = []
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(x), generator=generator)
        running, seen = 0.0, 0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(cfg.loss, model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            running += float(loss) * len(idx)
            seen += len(idx)
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val, cfg.loss)
        record = {
            "epoch": epoch,
            "train_loss": running / seen,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 3),
        }
        lines.append(json.dumps(record))
        write_text(metrics_path, "\n".join(lines) + "\n")
        log(
            f"epoch {epoch:>3}/{cfg.epochs}  train loss {record['train_loss']:.4f}  "
            f"val loss {val_loss:.4f}  val acc {val_acc:.2%}"
        )
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test, cfg.loss)
    return TrainResult(cfg.epochs, test_acc, test_loss, time.perf_counter() - start)
