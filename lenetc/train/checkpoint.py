"""Stage 4b helper, checkpoints: the complete state of a training run <-> one file, atomically.

save_checkpoint takes the model, optimizer, scheduler, the shuffling generator and the loop's own
counters and writes them with torch.save through a temporary file and a rename, so a kill at any
moment leaves either the previous checkpoint or the new one, never half of one. load_checkpoint
reads it back (weights_only=True: a checkpoint is data, never code) and refuses one written for a
different spec, model, data or overrides, since resuming it could not give the uninterrupted
run's weights; the refusal names what differs (`epochs 6 in the checkpoint, 2 now`), from the
identity, part by part, that each checkpoint carries. restore puts the state back into live objects.
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
    identity: dict[str, str] | None = None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    generator: torch.Generator,
    loop: dict[str, Any],
) -> None:
    state = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "identity": dict(identity or {}),  # what the fingerprint hashes, to name a difference
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generator": generator.get_state(),  # the batch order
        "torch_rng": torch.get_rng_state(),  # what dropout draws from
        "loop": loop,
    }
    write_with(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(
    path: Path, fingerprint: str, identity: dict[str, str] | None = None
) -> dict[str, Any]:
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
        differs = differences(state.get("identity"), identity)
        raise RuntimeFailure(
            f"checkpoint {path} was written for a different spec, data or overrides"
            + (f" ({differs})" if differs else "")
            + "; resume with the settings it was written with, or build without --resume "
            "to start over"
        )
    return state


def differences(saved: object, now: dict[str, str] | None) -> str:
    """`epochs 6 in the checkpoint, 2 now; optimizer.lr ...`: each part that differs."""
    if not isinstance(saved, dict) or not now:
        return ""
    found = []
    for key in sorted(set(saved) | set(now), key=lambda k: (k.endswith("sha256"), k)):
        was, is_ = saved.get(key, "nothing"), now.get(key, "nothing")
        if was != is_:
            if key.endswith("sha256"):
                was, is_ = f"{str(was)[:12]}...", f"{str(is_)[:12]}..."
            found.append(f"{key} {was} in the checkpoint, {is_} now")
    return "; ".join(found)


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
