"""flatten, linear, batch_norm2d, batch_norm1d, dropout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.fields import boolean, integer, number
from .base import (
    Inferred,
    LayerInput,
    LayerKind,
    Param,
    Product,
    ShapeProblem,
    fmt_shape,
    need_rank,
    numel,
    options,
    register,
)


def _flatten(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    n = numel(inp.shape)
    if len(inp.shape) == 1:
        return Inferred(out_shape=inp.shape, formula="already flat", factors=None)
    return Inferred(
        out_shape=(n,),
        formula=" x ".join(str(d) for d in inp.shape) + f" = {n}",
        factors=inp.shape,
    )


def _linear(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    need_rank(inp, 1, "linear", "add {type: flatten} before the first linear layer")
    (n,) = inp.shape
    stated = a["in_features"]
    if stated is not None and stated != n:
        source = ""
        if inp.factors:
            source = " (" + " x ".join(str(d) for d in inp.factors) + ")"
        raise ShapeProblem(
            f"in_features is {stated}, but its input has {n} features{source}",
            hint=f"remove in_features to infer it, or set it to {n}",
            key="in_features",
        )
    out = a["out_features"]
    # `16 * 5 * 5` reads better than 400 where a flatten made the features (a hand-written LeNet)
    in_features = Product(inp.factors) if inp.factors else n
    bias = a["bias"]
    return Inferred(
        out_shape=(out,),
        formula=f"{n} -> {out}",
        params=n * out + (out if bias else 0),
        flops=out * (2 * n + (1 if bias else 0)),
        args={"in_features": in_features, "out_features": out},
        tensors=(("weight", (out, n)),) + ((("bias", (out,)),) if bias else ()),
        options=options(a, {"bias": True}),
    )


def _norm_tensors(n: int, affine: bool) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A batch norm's float state: scale and shift when affine, then the running statistics."""
    learned = ("weight", "bias") if affine else ()
    return tuple((name, (n,)) for name in (*learned, "running_mean", "running_var"))


def _batch_norm2d(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    need_rank(
        inp,
        3,
        "batch_norm2d",
        "batch_norm2d normalizes (channels, height, width) maps; after a flatten there are none",
    )
    c = inp.shape[0]
    if a["num_features"] is not None and a["num_features"] != c:
        raise ShapeProblem(
            f"num_features is {a['num_features']}, but its input {fmt_shape(inp.shape)} has {c} "
            "channels",
            hint=f"remove num_features to infer it, or set it to {c}",
            key="num_features",
        )
    return Inferred(
        out_shape=inp.shape,
        formula=f"normalizes {c} channels",
        params=2 * c if a["affine"] else 0,
        flops=2 * numel(inp.shape),
        args={"num_features": c},
        tensors=_norm_tensors(c, a["affine"]),
        options=options(a, {"eps": 1e-5, "momentum": 0.1, "affine": True}),
    )


def _batch_norm1d(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    need_rank(
        inp,
        1,
        "batch_norm1d",
        "batch_norm1d normalizes features; for (channels, height, width) maps use batch_norm2d",
    )
    (n,) = inp.shape
    if a["num_features"] is not None and a["num_features"] != n:
        raise ShapeProblem(
            f"num_features is {a['num_features']}, but its input has {n} features",
            hint=f"remove num_features to infer it, or set it to {n}",
            key="num_features",
        )
    return Inferred(
        out_shape=inp.shape,
        formula=f"normalizes {n} features",
        params=2 * n if a["affine"] else 0,
        flops=2 * n,
        args={"num_features": n},
        tensors=_norm_tensors(n, a["affine"]),
        options=options(a, {"eps": 1e-5, "momentum": 0.1, "affine": True}),
        factors=inp.factors,  # between flatten and linear it keeps `16 * 5 * 5`
    )


def _dropout(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    return Inferred(
        out_shape=inp.shape,
        formula=f"p = {a['p']:g} while training; identity in eval",
        args={"p": a["p"]},
        factors=inp.factors,  # a dropout between flatten and linear keeps `16 * 5 * 5`
    )


register(
    LayerKind(
        type="flatten",
        prefix="flatten",
        params=(),
        rule=_flatten,
        module=False,
        torch="torch.flatten(x, 1)",
        summary="(channels, height, width) -> (features,)",
    )
)

register(
    LayerKind(
        type="linear",
        prefix="fc",
        params=(
            Param("out_features", integer(1, 1 << 20), doc="output size"),
            Param("bias", boolean, True, "learn an additive bias"),
            Param("in_features", integer(1, 1 << 24), None, "optional; inferred and checked"),
        ),
        rule=_linear,
        module=True,
        torch="nn.Linear",
        summary="fully connected layer",
    )
)

register(
    LayerKind(
        type="batch_norm2d",
        prefix="bn",
        params=(
            Param("eps", number(0.0, 1.0, lo_open=True), 1e-5, "added to the variance"),
            Param("momentum", number(0.0, 1.0), 0.1, "running-statistics momentum"),
            Param("affine", boolean, True, "learn a scale and shift"),
            Param("num_features", integer(1, 65536), None, "optional; inferred and checked"),
        ),
        rule=_batch_norm2d,
        module=True,
        torch="nn.BatchNorm2d",
        summary="batch normalization over channels",
        folds_into_input=True,
    )
)

register(
    LayerKind(
        type="batch_norm1d",
        prefix="bn",
        params=(
            Param("eps", number(0.0, 1.0, lo_open=True), 1e-5, "added to the variance"),
            Param("momentum", number(0.0, 1.0), 0.1, "running-statistics momentum"),
            Param("affine", boolean, True, "learn a scale and shift"),
            Param("num_features", integer(1, 1 << 24), None, "optional; inferred and checked"),
        ),
        rule=_batch_norm1d,
        module=True,
        torch="nn.BatchNorm1d",
        summary="batch normalization over features (MLPs)",
        folds_into_input=True,
    )
)

register(
    LayerKind(
        type="dropout",
        prefix="dropout",
        params=(Param("p", number(0.0, 1.0), 0.5, "probability of zeroing an element"),),
        rule=_dropout,
        module=False,
        torch="F.dropout",
        summary="dropout (training only)",
    )
)
