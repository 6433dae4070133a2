"""Stage 6a, runtimes: one adapter module per way of running a build folder's artifacts.

In: a build folder and its Spec. Out: Runtime objects (base.py) that verify/ drives and compares;
adapters only run, the comparison lives in verify/. Each adapter module registers a RuntimeKind in
registry.py; importing this package imports every module in it, so adding a runtime is adding one
module. `plan` lists the rows to try, in table order, narrowed to the runtimes asked for.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..artifacts import BuildDir
from ..spec.load import Spec
from .base import Runtime
from .registry import DEVICES, REGISTRY, Target, all_rows, matches, register, select

for _module in pkgutil.iter_modules(__path__):  # registration side effects, one module each
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Runtime", "Target", "matches", "plan", "register"]


def plan(
    out: BuildDir,
    spec: Spec,
    providers: tuple[str, ...],
    runtimes: tuple[str, ...] = (),
    require: tuple[str, ...] = (),
    where: str = "--runtime",
) -> list[Runtime]:
    """The rows to run, in table order: those `runtimes` names (all when empty), plus the required.

    A device among the names (`cuda`) also adds its execution provider to `providers`."""
    asked = tuple(s for s in runtimes + require if s in DEVICES)
    target = Target(out, spec, tuple(dict.fromkeys(providers + asked)))
    rows = all_rows(target)
    select(rows, require, "--require")
    chosen = select(rows, runtimes, where)
    return [r for r in rows if r in chosen or any(matches(r, s) for s in require)]
