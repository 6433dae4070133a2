"""Activations: elementwise (relu, leaky_relu, tanh, sigmoid, gelu) and over an axis (softmax)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.fields import choice, integer, number
from .base import (
    Inferred,
    LayerInput,
    LayerKind,
    Param,
    ShapeProblem,
    numel,
    options,
    register,
)


def _elementwise(cost: int, defaults: Mapping[str, Any] | None = None):
    def rule(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
        return Inferred(
            out_shape=inp.shape,
            flops=cost * numel(inp.shape),
            options=options(a, defaults or {}),
            factors=inp.factors,
        )

    return rule


def _dim(value: Any) -> int:
    return integer(-4, 3, "an axis")(value)


def _over_axis(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    rank = len(inp.shape) + 1  # torch counts the batch axis
    dim = a["dim"]
    if not -rank <= dim < rank or dim % rank == 0:
        axes = ", ".join(str(d) for d in range(1, rank))
        raise ShapeProblem(
            f"dim {dim} is not a feature axis of the input (N, {', '.join(map(str, inp.shape))})"
            + (" (it is the batch axis)" if -rank <= dim < rank else ""),
            hint=f"dim counts the batch axis as 0, as torch does; choose {axes}"
            + (f" (or {-rank + 1} to -1)" if rank > 2 else " or -1"),
            key="dim",
        )
    return Inferred(
        out_shape=inp.shape, flops=3 * numel(inp.shape), args={"dim": dim}, factors=inp.factors
    )


def _activation(type_: str, params: tuple[Param, ...], rule, summary: str) -> None:
    register(
        LayerKind(
            type=type_,
            prefix=type_,
            params=params,
            rule=rule,
            module=False,
            torch=f"F.{type_}" if type_ not in ("tanh", "sigmoid") else f"torch.{type_}",
            summary=summary,
        )
    )


_activation("relu", (), _elementwise(1), "max(x, 0)")
_activation("tanh", (), _elementwise(1), "hyperbolic tangent")
_activation("sigmoid", (), _elementwise(1), "logistic sigmoid")
_activation(
    "leaky_relu",
    (Param("negative_slope", number(0.0, 1.0), 0.01, "slope for x < 0"),),
    _elementwise(1, {"negative_slope": 0.01}),
    "max(x, 0) + negative_slope * min(x, 0)",
)
_activation(
    "elu",
    (Param("alpha", number(0.0, 10.0, lo_open=True), 1.0, "the value x < 0 saturates to: -alpha"),),
    _elementwise(1, {"alpha": 1.0}),
    "x for x > 0, alpha * (exp(x) - 1) otherwise",
)
_activation(
    "gelu",
    (Param("approximate", choice("none", "tanh"), "none", "'none' or 'tanh'"),),
    _elementwise(1, {"approximate": "none"}),
    "Gaussian error linear unit",
)
_dim_param = (Param("dim", _dim, 1, "axis, counting the batch as 0 (as torch does)"),)
_activation("softmax", _dim_param, _over_axis, "softmax over an axis")
_activation("log_softmax", _dim_param, _over_axis, "log of softmax over an axis")
