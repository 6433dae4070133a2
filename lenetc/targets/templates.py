"""Targets (templates): the Jinja environment over templates/<target>/ and each kind's fragment.

A target is a folder of templates: templates/<target>/<file>.j2 lays out a file and loops over
layers without branching on a kind; templates/<target>/layers/<type>.j2 holds one fragment per
kind, with its macros (for torch: `init` and `call`). Found in the installed wheel
(lenetc.templates) or, in a checkout, at the repo root. No torch import.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ..layers import REGISTRY


def templates_dir() -> Path:
    """templates/ from the installed wheel (lenetc.templates) or, in a checkout, the repo root."""
    try:
        found = resources.files("lenetc.templates")
        if found.joinpath("torch", "module.py.j2").is_file():
            return Path(str(found))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "templates"


@cache
def environment(autoescape: bool = False) -> jinja2.Environment:
    """The templates/ environment. Source targets leave values as they are (Python and C, not
    HTML; every value was typed by its rule and written by its target); HTML and SVG pages escape
    every one."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=autoescape,
    )


def fragment(target: str, type_: str) -> Any:
    """The macros of one layer kind's fragment (a jinja2 TemplateModule)."""
    return environment().get_template(f"{target}/layers/{type_}.j2").module


def starts_line(target: str, type_: str) -> bool:
    """Whether a layer begins a statement in forward (its fragment may say; else: parametric)."""
    declared = getattr(fragment(target, type_), "starts_line", None)
    return REGISTRY[type_].module if declared is None else bool(declared)
