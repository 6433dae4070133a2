"""Stage 2, check (build): ShapeTrace -> SpecError when `lenetc build` cannot train the network.

`check` accepts any network whose shapes fit, a parameter-free one included (`lenetc render`
and `draw` have a use for it); a build trains weights, so a spec without any is a spec error
(exit 2, located at its first layer) before anything is written, not an optimizer's ValueError
after the data is loaded. No torch import.
"""

from __future__ import annotations

from ..errors import Location, Problem, SpecError
from .shapes import ShapeTrace


def require_trainable(trace: ShapeTrace) -> None:
    if trace.params > 0:
        return
    first = trace.spec.nodes[0]
    kinds = ", ".join(dict.fromkeys(t.node.type for t in trace.nodes))
    raise SpecError(
        Problem(
            f"the network has no parameters to train (its layers: {kinds}); a build trains weights",
            Location(trace.spec.path, first.line),
            hint="add a layer with weights (linear, conv2d, batch_norm2d ...); lenetc check, "
            "render and draw take the spec as it is",
        )
    )
