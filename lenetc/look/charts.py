"""Look (report): numbers -> chart geometry and pictures for report.html. No torch import.

`curve_chart` turns per-epoch series (metrics.jsonl) into the polylines, ticks and legend of one
small SVG line chart; `confusion` into the cells of a shaded table; `png_gray` encodes an image as
a PNG data URI with zlib alone. The templates only place what these return.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

W, H = 300, 170  # one chart, px
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 12, 30
COLORS = ("#1d4f91", "#c2410c", "#15803d")  # blue, orange, green: readable on white


@dataclass(frozen=True)
class Series:
    name: str
    points: str  # "x,y x,y ..." for <polyline>
    color: str
    dash: str  # "" or a stroke-dasharray


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    series: tuple[Series, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    plot: tuple[float, float, float, float]  # x, y, w, h of the plotting area
    x_label: str
    summary: str  # the last values in words, for screen readers and as a caption


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 2.5, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks if len(ticks) > 1 else [lo, hi]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) < 1e-3 or abs(v) >= 1e4:
        return f"{v:.0e}"
    return f"{v:.4g}"


def curve_chart(
    title: str, epochs: Sequence[int], series: dict[str, Sequence[float | None]], percent=False
) -> Chart:
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    ticks = _nice_ticks(min(lo, 0.0) if percent else lo, hi)
    lo, hi = ticks[0], ticks[-1]
    x0, y0, pw, ph = LEFT, TOP, W - LEFT - RIGHT, H - TOP - BOTTOM
    e_lo, e_hi = (epochs[0], epochs[-1]) if epochs else (1, 1)

    def px(e: float) -> float:
        return round(x0 + (pw * (e - e_lo) / (e_hi - e_lo) if e_hi > e_lo else pw / 2), 1)

    def py(v: float) -> float:
        return round(y0 + ph - ph * (v - lo) / (hi - lo), 1)

    lines = []
    for i, (name, vs) in enumerate(series.items()):
        pts = [f"{px(e)},{py(v)}" for e, v in zip(epochs, vs) if v is not None and math.isfinite(v)]
        lines.append(Series(name, " ".join(pts), COLORS[i % len(COLORS)], "5 3" if i else ""))
    x_ticks = sorted({e_lo, e_hi, *_nice_ticks(e_lo, e_hi)} & set(range(e_lo, e_hi + 1)))
    last = [
        f"{name} {_pct(vs[-1]) if percent else _fmt(vs[-1])}"
        for name, vs in series.items()
        if vs and vs[-1] is not None
    ]
    return Chart(
        title=title,
        width=W,
        height=H,
        series=tuple(lines),
        x_ticks=tuple(Tick(px(e), y0 + ph + 14, str(e)) for e in x_ticks),
        y_ticks=tuple(Tick(x0 - 4, py(v) + 4, _pct(v) if percent else _fmt(v)) for v in ticks),
        plot=(x0, y0, pw, ph),
        x_label="epoch",
        summary=f"{title} after epoch {e_hi}: " + ", ".join(last),
    )


def _pct(v: float) -> str:
    return f"{v:.0%}"


@dataclass(frozen=True)
class Cell:
    count: int
    style: str  # the background, computed here so the template only places it
    diagonal: bool


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> list[list[Cell]]:
    """Rows: the true class; columns: the predicted class; shaded by the share of the row."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    rows = []
    for i in range(classes):
        total = max(int(counts[i].sum()), 1)
        row = []
        for j in range(classes):
            # at most 55% of the hue under dark text: contrast stays above 4.5:1 in every cell
            share = 0.55 * counts[i, j] / total
            if counts[i, j] and i != j:
                share = max(share, 0.15)  # a single mistake still shows
            hue = "29,79,145" if i == j else "194,65,12"
            row.append(Cell(int(counts[i, j]), f"background: rgba({hue},{share:.3f})", i == j))
        rows.append(row)
    return rows


def png_gray(image: np.ndarray, scale: int = 1) -> str:
    """A (H, W) or (3, H, W) array of 0..255 -> a `data:image/png;base64,...` URI (zlib only)."""
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if pixels.ndim == 3:
        pixels = pixels.transpose(1, 2, 0)  # (H, W, 3)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    color = 2 if pixels.ndim == 3 else 0
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
