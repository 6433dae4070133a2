"""Targets (c, literals): Python values -> C text: float literals, exact hex floats, strings, and
the names a generated identifier must not take. No torch import."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Names a layer's C function must not take: C99's keywords, what <math.h>, <float.h> and
# <stddef.h> declare (functions in their double, float and long double forms, and macros), and the
# names model.c gives its own things (buffers bufK, the forward function's variables).
_MATH = """acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 expm1 frexp
    ilogb ldexp log log10 log1p log2 logb modf scalbn scalbln cbrt fabs hypot pow sqrt erf erfc
    lgamma tgamma ceil floor nearbyint rint lrint llrint round lround llround trunc fmod remainder
    remquo copysign nan nextafter nexttoward fdim fmax fmin fma""".split()
C_RESERVED = frozenset(
    """auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Bool _Complex _Imaginary main input output batch n x y
    i o c g p oc ic ky kx oy ox iy ix m s v w row acc in out NULL offsetof size_t ptrdiff_t
    wchar_t isnan isinf isfinite isnormal signbit fpclassify isgreater isless float_t double_t
    math_errhandling""".split()
    + [f + suffix for f in _MATH for suffix in ("", "f", "l")]
)
RESERVED_PATTERN = re.compile(r"buf\d+|v\d+|[A-Z][A-Z0-9_]*")  # buffers, block values, macros


def c_literal(value: float) -> str:
    """A float as a C float literal that reads back the same float32: 0.01 -> 0.01f."""
    text = repr(float(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def hex_float(value: float) -> str:
    """A float32 value as an exact C99 hex float literal: 0.1f -> 0x1.99999ap-4f."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"cannot write {value} as a C literal")
    text = float(value).hex()  # exact: a float32 widened to double loses nothing
    sign = "-" if text.startswith("-") else ""
    mantissa, exponent = text.lstrip("-")[2:].split("p")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{sign}0x{mantissa}p{exponent}f"


def c_string(text: str) -> str:
    """A C string literal holding `text` as UTF-8: printable ASCII kept, the rest escaped
    (octal), `?` too (C99 reads `??=` as a trigraph)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def tuple_text(values: Sequence[int]) -> str:
    """A Python-style tuple for a comment: (3,), (6, 1, 5, 5)."""
    return "(" + ", ".join(str(v) for v in values) + ("," if len(values) == 1 else "") + ")"
