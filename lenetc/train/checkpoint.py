"""Stage 4b helper, checkpoints: the complete state of a training run <-> one file, atomically.

save_checkpoint takes the model, optimizer, scheduler, the shuffling generator and the loop's own
counters and writes them with torch.save through a temporary file and a rename, so a kill at any
moment leaves either the previous checkpoint or the new one, never half of one. load_checkpoint
reads it back (weights_only=True: a checkpoint is data, never code) and refuses one written for a
different spec, model, data or overrides, since resuming it could not give the uninterrupted
run's weights. restore puts the state back into live objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..artifacts import write_with
from ..errors import RuntimeFailure

FORMAT = 1


def save_checkpoint(
    path: Path,
    *,
    fingerprint: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    generator: torch.Generator,
    loop: dict[str, Any],
) -> None:
    state = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generator": generator.get_state(),  # the batch order
        "torch_rng": torch.get_rng_state(),  # what dropout draws from
        "loop": loop,
    }
    write_with(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RuntimeFailure(f"checkpoint {path}: no such file") from None
    except Exception as exc:  # a truncated or foreign file; torch raises many types
        raise RuntimeFailure(
            f"checkpoint {path}: cannot be read ({type(exc).__name__}); "
            "delete it or build without --resume"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RuntimeFailure(f"checkpoint {path}: not a lenetc checkpoint of format {FORMAT}")
    if state.get("fingerprint") != fingerprint:
        raise RuntimeFailure(
            f"checkpoint {path} was written for a different spec, data or overrides; "
            "build without --resume to start over"
        )
    return state


def restore(
    state: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Load every saved state into the live objects; return the loop's counters."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return state["loop"]
