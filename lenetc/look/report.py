"""Look (report): a build folder -> build/<name>/report.html, one self-contained page.

Reads what the build left (spec.yaml, train.json, metrics.jsonl, heldout.npz, model.onnx,
verify.json, manifest.json) and renders templates/look/report.html.j2: the drawing, the shape
table with each derivation, training curves, the confusion matrix and the misclassified test
images (predicted here with onnxruntime on model.onnx), the parity table, the artifact hashes,
the commands to embed the model, and the live panel (panel.js.j2, run by `lenetc serve`). All CSS,
SVG, images and data are inline: the page opens offline and requests nothing from the network.
A section whose file is missing says so; the page is still written. No torch import, but for
`refresh_report` (`lenetc report`), which checks the folder's integrity first.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup

from ..artifacts import BuildDir, write_text
from ..check.shapes import ShapeTrace, check
from ..errors import IntegrityFailure, RuntimeFailure
from ..layers.base import fmt_shape
from ..spec.load import load_spec
from .charts import confusion, curve_chart, png_gray
from .draw import draw, environment
from .layout import size_text

REPORT = "report.html"
MAX_MISCLASSIFIED = 32
STATUSES = ("PASS", "FAIL", "unavailable")  # verify/results.py's (importing it would bring torch)


def refresh_report(build_dir: Path) -> Path:
    """`lenetc report`: under the folder's lock (lock.py), the integrity checks verify runs, then
    write_report. A folder that fails them (exit 4) loses its old report.html, whose PASS it no
    longer earns."""
    from ..lock import folder_lock
    from ..verify.agreement import check_build  # torch: imported here, write_report needs none
    from ..verify.integrity import require_build_folder

    out = require_build_folder(Path(build_dir))
    with folder_lock(out.root, f"lenetc report {build_dir}"):
        try:
            check_build(out.root)
        except IntegrityFailure:
            with contextlib.suppress(OSError):  # a read-only folder keeps it; the error stands
                out.report.unlink(missing_ok=True)
            raise
        return write_report(out.root)


def write_report(build_dir: Path) -> Path:
    """Render and atomically write build_dir/report.html; returns its path."""
    path = Path(build_dir) / REPORT
    write_text(path, render_report(build_dir))
    return path


def render_report(build_dir: Path) -> str:
    out = BuildDir(Path(build_dir))
    if not out.spec.is_file():
        raise RuntimeFailure(f"{build_dir} has no spec.yaml; is it a lenetc build folder?")
    trace = check(load_spec(out.spec))
    train = _json(out.train_json)
    verify = _json(out.verify_json)
    predictions = _predictions(out, trace)
    context = {
        "name": trace.spec.name,
        "class_name": trace.spec.class_name,
        "folder": str(build_dir),
        "folder_quoted": shlex.quote(str(build_dir)),  # in a command to paste
        "summary": _summary(trace, train, verify),
        "drawing": Markup(draw(trace)),  # rendered by the same autoescaping environment
        "shapes": _shapes(trace),
        "charts": _charts(out.metrics),
        "predictions": predictions,
        "parity": _parity(verify),
        "int8": _int8(verify),
        "manifest": _json(out.manifest),
        "footprint": _footprint(_json(out.footprint)),
        "embed": _embed(str(build_dir), trace),
        "panel": _panel(trace),
    }
    return environment().get_template("look/report.html.j2").render(**context)


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise RuntimeFailure(f"{path} is not readable JSON: {exc}") from None


def _summary(trace: ShapeTrace, train: dict | None, verify: dict | None) -> dict:
    runtimes = (verify or {}).get("runtimes", [])
    return {
        "params": f"{trace.params:,}",
        "flops": f"{trace.flops:,}",
        "io": f"{size_text(trace.spec.input_shape)} -> {size_text(trace.output_shape)}",
        "accuracy": f"{train['test_accuracy']:.2%}" if train else None,
        "dataset": train["dataset"] if train else None,
        "samples": train["samples"] if train else None,
        "epochs": train["epochs"] if train else None,
        "parity": None if verify is None else ("PASS" if verify.get("passed") else "FAIL"),
        "runtimes": {s: sum(r["status"] == s for r in runtimes) for s in STATUSES},
    }


def _shapes(trace: ShapeTrace) -> list[dict]:
    rows = [
        {
            "name": "input",
            "type": "",
            "line": trace.spec.input_line or "",
            "output": fmt_shape(trace.spec.input_shape),
            "derivation": "",
            "params": "",
            "flops": "",
        }
    ]
    for t in trace.nodes:
        rows.append(
            {
                "name": t.node.name,
                "type": t.node.type,
                "line": t.node.line,
                "output": fmt_shape(t.out_shape),
                "derivation": t.out.formula,
                "params": f"{t.out.params:,}",
                "flops": f"{t.out.flops:,}",
            }
        )
    return rows


def _charts(metrics: Path) -> list:
    if not metrics.is_file():
        return []
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not records:
        return []
    epochs = [r["epoch"] for r in records]
    return [
        curve_chart(
            "loss",
            epochs,
            {"train": [r["train_loss"] for r in records], "val": [r["val_loss"] for r in records]},
        ),
        curve_chart(
            "accuracy",
            epochs,
            {
                "train": [r["train_accuracy"] for r in records],
                "val": [r["val_accuracy"] for r in records],
            },
            percent=True,
        ),
        curve_chart("learning rate", epochs, {"lr": [r["lr"] for r in records]}),
    ]


@dataclass(frozen=True)
class Miss:
    image: str
    true: str
    predicted: str
    confidence: str
    index: int


def _predictions(out: BuildDir, trace: ShapeTrace) -> dict | None:
    """The test split through model.onnx (onnxruntime): confusion matrix and the misses."""
    if not (out.heldout.is_file() and out.onnx.is_file()):
        return None
    from ..predict import open_model, to_probabilities

    session, info = open_model(out.root)
    with np.load(out.heldout, allow_pickle=False) as held:
        x, y = held["x"].astype(np.float32), held["y"].astype(np.int64)
    if y.ndim != 1 or len(x) == 0:
        return None
    probs = to_probabilities(
        session.run([info.output_name], {info.input_name: x})[0].astype(np.float64),
        info.output_kind,
    )
    if probs.ndim != 2 or y.min() < 0 or y.max() >= probs.shape[1]:
        return None  # not a classifier of these labels: no confusion matrix to show
    pred = probs.argmax(axis=1)
    classes = probs.shape[1]
    labels = [info.labels[i] if i < len(info.labels) else str(i) for i in range(classes)]
    misses = []
    if len(trace.spec.input_shape) == 3 and trace.spec.input_shape[0] in (1, 3):
        lo, hi = info.input_range
        shape = (1, -1, 1, 1)
        raw = x * np.asarray(info.std).reshape(shape) + np.asarray(info.mean).reshape(shape)
        pixels = (raw - lo) / ((hi - lo) or 1.0) * 255.0
        for i in np.flatnonzero(pred != y)[:MAX_MISCLASSIFIED]:
            image = pixels[i, 0] if pixels.shape[1] == 1 else pixels[i]
            misses.append(
                Miss(
                    png_gray(image),
                    labels[y[i]],
                    labels[pred[i]],
                    f"{probs[i, pred[i]]:.0%}",
                    int(i),
                )
            )
    return {
        "labels": labels,
        "cells": confusion(y, pred, classes),
        "total": len(y),
        "correct": int((pred == y).sum()),
        "accuracy": f"{(pred == y).mean():.2%}",
        "wrong": int((pred != y).sum()),
        "misses": misses,
        "images": len(trace.spec.input_shape) == 3,
    }


def _int8(verify: dict | None) -> dict | None:
    """verify.json's int8 section as the page shows it: sizes, accuracies, rows, SQNR."""
    q = (verify or {}).get("int8")
    if not q:
        return None
    sizes = q.get("bytes", {})
    f, i = sizes.get("model.onnx"), sizes.get(q["artifact"])
    top = max([r["sqnr_db"] for r in q["sqnr"] if r["sqnr_db"] is not None] or [1.0])
    return {
        "passed": q["drop_points"] is None or q["drop_points"] <= q["max_drop"],
        "sizes": f"{q['artifact']} {i:,} bytes = {i / f:.2f}x model.onnx ({f:,})"
        if f and i
        else "",
        "accuracy": None
        if q["float_accuracy"] is None
        else {
            "float": f"{q['float_accuracy']:.2%}",
            "int8": f"{q['int8_accuracy']:.2%}",
            "drop": f"{q['drop_points']:.2f}",
            "limit": f"{q['max_drop']:g}",
            "agreement": f"{q['argmax_agreement']:.2%}",
            "samples": q["test_samples"],
        },
        "scale": f"{q['output_scale']:.4g}",
        "rows": [
            {
                "runtime": r["runtime"],
                "artifact": r["artifact"],
                "steps": "-" if r["max_steps"] is None else f"{r['max_steps']:g}",
                "tolerance": f"{r['tolerance_steps']:g}",
                "differ": f"{r['elements_off']}/{r['elements']}" if r["elements"] else "",
                "status": r["status"],
                "reason": r["reason"] or "",
            }
            for r in q["rows"]
        ],
        "sqnr": [
            {
                "layers": ", ".join(r["layers"]),
                "type": r["type"],
                "line": r["line"],
                "db": "exact" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f}",
                "lost": f"{r['lost_db']:.1f}",
                "width": 100
                if r["sqnr_db"] is None
                else max(0, min(100, round(100 * r["sqnr_db"] / top))),
            }
            for r in q["sqnr"]
        ],
        "calibration": q["calibration_samples"],
        "hint": q.get("hint"),
    }


def _parity(verify: dict | None) -> dict | None:
    if verify is None:
        return None
    rows = []
    for r in verify.get("runtimes", []):
        base = {"runtime": r["runtime"], "artifact": r["artifact"], "status": r["status"]}
        if not r["outputs"]:
            rows.append(dict(base, output="-", reason=r.get("reason") or "", metrics=None))
        for o in r["outputs"]:
            rows.append(
                dict(
                    base,
                    output=o["output"],
                    reason=o.get("problem") or "",
                    result="PASS" if o["passed"] else "FAIL",
                    metrics={
                        "max_abs": (o["max_abs"], f"{o['max_abs']:.1e}"),
                        "max_rel": (o["max_rel"], f"{o['max_rel']:.1e}"),
                        "min_atol": (o["min_atol"], f"{o['min_atol']:.1e}"),
                        "argmax": (o["argmax_agreement"], _pct(o["argmax_agreement"])),
                        "accuracy": (o["accuracy"], _pct(o["accuracy"])),
                    },
                )
            )
    return {
        "rows": rows,
        "passed": verify.get("passed"),
        "failures": verify.get("failures", []),
        "notes": [f"{r['runtime']}: {n}" for r in verify.get("runtimes", []) for n in r["notes"]],
        "tolerance": f"atol {verify['atol']:.0e}, rtol {verify['rtol']:.0e}",
        "inputs": ", ".join(verify.get("inputs", [])),
        "reference": verify.get("reference", ""),
    }


def _footprint(data: dict | None) -> dict | None:
    """footprint.json as table rows: what check states per variant, what the cross compiler
    measured per variant and core (or why it did not)."""
    if data is None:
        return None
    stated = [
        {
            "variant": variant,
            "ram": f"{f['ram_bytes']:,}",
            "arena": f"{f['arena_bytes']:,}",
            "flash": f"{f['flash_bytes']:,}",
            "largest": (f.get("largest_weights") or {}).get("layer", "-"),
        }
        for variant, f in data.get("stated", {}).items()
    ]
    measured, why = [], None
    for name, m in data.get("measured", {}).items():
        if name == "unavailable":
            why = m
        elif "failed" in m:
            measured.append({"name": name, "failed": m["failed"]})
        else:
            measured.append(
                {
                    "name": name,
                    "core": f"{m['core']} ({m['board']})",
                    "model": [f"{m['model'][k]:,}" for k in ("text", "data", "bss")],
                    "selftest": [f"{m['selftest'][k]:,}" for k in ("text", "data", "bss")]
                    if m.get("selftest")
                    else ["-"],
                    "flash": f"{m['flash_bytes']:,}",
                    "ram": f"{m['ram_bytes']:,}",
                }
            )
    target = {k: f"{v:,}" for k, v in data.get("target", {}).items() if v}
    compiler = f"{data.get('compiler', '')} {data.get('flags', '')}".strip()
    return {
        "stated": stated,
        "measured": measured,
        "why": why,
        "target": target,
        "compiler": compiler,
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _embed(folder: str, trace: ShapeTrace) -> list[tuple[str, str]]:
    """The commands to paste: the folder shell-quoted (a folder named `p $(touch x)"` stays a
    name) and, in Python and C++, a string literal of the language (no quote closes early)."""
    shape = ", ".join(str(d) for d in trace.spec.input_shape)
    quoted = shlex.quote(folder)
    onnx_py = repr(f"{folder}/model.onnx")
    script_cpp = json.dumps(f"{folder}/model.torchscript.pt")  # ASCII, C-style escapes
    return [
        (
            "Predict from the command line (onnxruntime only; .npy or .pgm/.ppm inputs)",
            f"lenetc predict {quoted} digit.pgm",
        ),
        (
            "Python, onnxruntime: the normalization and labels are in model.onnx itself",
            "import json, numpy as np, onnxruntime as ort\n"
            f"session = ort.InferenceSession({onnx_py})\n"
            "meta = session.get_modelmeta().custom_metadata_map\n"
            'mean = np.array(json.loads(meta["normalization_mean"]))\n'
            'std = np.array(json.loads(meta["normalization_std"]))\n'
            f"raw = np.zeros(({shape}))  # one sample in the dataset's scale (input_range)\n"
            "x = ((raw - mean.reshape(-1, *[1] * (raw.ndim - 1))) / "
            "std.reshape(-1, *[1] * (raw.ndim - 1)))\n"
            'out = session.run(None, {meta["input_name"]: x[None].astype(np.float32)})[0]\n'
            'print(json.loads(meta["class_labels"])[int(out.argmax())])',
        ),
        (
            "JavaScript in a browser (onnxruntime-web), as the live panel above does",
            'const session = await ort.InferenceSession.create("model.onnx");\n'
            f'const x = new ort.Tensor("float32", data, [1, {shape}]);\n'
            "const out = await session.run({[session.inputNames[0]]: x});",
        ),
        (
            "C++ with libtorch (TorchScript)",
            f"auto module = torch::jit::load({script_cpp});\n"
            f"auto y = module.forward({{torch::rand({{1, {shape}}})}}).toTensor();",
        ),
        (
            "Serve this report to try the model in the browser (127.0.0.1 only)",
            f"lenetc serve {quoted}",
        ),
    ]


def _panel(trace: ShapeTrace) -> dict:
    """The live panel draws one grayscale image of the model's input size."""
    shape = trace.spec.input_shape
    if len(shape) != 3 or shape[0] != 1:
        return {
            "enabled": False,
            "why": f"the live panel draws one grayscale image; this model takes {fmt_shape(shape)}",
        }
    return {"enabled": True, "height": shape[1], "width": shape[2], "why": ""}
