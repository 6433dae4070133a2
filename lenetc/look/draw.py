"""Look (draw): ShapeTrace -> SVG text, the architecture drawn like the LeNet-5 figure.

layout.py computes every position; templates/look/net.svg.j2 writes the SVG through an
autoescaping Jinja environment (every name in the drawing comes from a user's spec). Imports
spec, check and targets only: `lenetc draw` is as fast as `lenetc check` (no torch import).
"""

from __future__ import annotations

import jinja2

from ..check.shapes import ShapeTrace
from ..targets.templates import environment as template_environment
from .layout import Figure, layout


def environment() -> jinja2.Environment:
    """The look templates: names, labels and messages are user-derived, so escape every one."""
    return template_environment(autoescape=True)


def figure_svg(figure: Figure) -> str:
    return environment().get_template("look/net.svg.j2").render(f=figure)


def draw(trace: ShapeTrace) -> str:
    """The SVG drawing of a checked spec."""
    return figure_svg(layout(trace))
