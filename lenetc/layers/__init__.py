"""Layer kinds: importing this package registers every kind in REGISTRY."""

from . import activation, conv, dense, join, pool  # noqa: F401  (registration side effects)
from .base import REGISTRY, Inferred, LayerInput, LayerKind, Param, Shape, ShapeProblem

__all__ = ["REGISTRY", "Inferred", "LayerInput", "LayerKind", "Param", "Shape", "ShapeProblem"]
