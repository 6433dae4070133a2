"""Stage 6b, verify (report): a parity Report -> the terminal table and the verify.json object.

Takes the Report that parity.verify_build collected; returns text or a JSON-ready dict. Collect
(parity.py), locate (divergence.py), format (here): no arithmetic here beyond rounding for print.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .results import FAIL, UNAVAILABLE, WARN, Report

HEADER = (
    "runtime",
    "artifact",
    "output",
    "max abs",
    "max rel",
    "min atol",
    "argmax",
    "accuracy",
    "result",
)


def to_json(report: Report) -> dict[str, Any]:
    data = asdict(report)
    data["passed"] = report.passed
    data["failures"] = report.failures()
    return data


def format_table(report: Report, explain: bool = False) -> str:
    """The table, a note per WARN, FAIL and within-tolerance difference, and the runtimes that
    cannot run here in one line (with `explain`: one line each, with the reason and the way to
    install it). A required runtime that is missing is a FAIL, and its reason is always shown."""
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    missing: list[str] = []
    for r in report.runtimes:
        if not r.outputs:
            result = "n/a" if r.status == UNAVAILABLE else r.status
            rows.append((r.runtime, r.artifact, "-", "", "", "", "", "", result))
            if r.status == UNAVAILABLE and not explain:
                missing.append(r.runtime)
            else:
                notes.append(f"{r.runtime}: {r.status}: {r.reason}")
            continue
        for o in r.outputs:
            rows.append(
                (
                    r.runtime,
                    r.artifact,
                    o.output,
                    f"{o.max_abs:.1e}",
                    f"{o.max_rel:.1e}",
                    f"{o.min_atol:.1e}",
                    _pct(o.argmax_agreement),
                    _pct(o.accuracy),
                    "PASS" if o.passed else (WARN if r.status == WARN else "FAIL"),
                )
            )
        if r.status == WARN:
            notes.append(f"{r.runtime}: {WARN}: {r.reason}")
        elif r.status == FAIL and r.divergence is not None:
            notes.append(f"{r.runtime}: {r.divergence.describe(report.spec_file)}")
        elif r.status == FAIL and r.reason:
            notes.append(f"{r.runtime}: FAIL: {r.reason}")
        notes += [f"{r.runtime}: note: {n}" for n in r.notes]
    widths = [max(len(row[i]) for row in rows + [HEADER]) for i in range(len(HEADER))]
    lines = [
        f"parity of {report.build} against {report.reference}",
        f"atol {report.atol:.0e}, rtol {report.rtol:.0e}; inputs: "
        + ", ".join(report.inputs)
        + (
            f"; reference accuracy {_pct(report.reference_accuracy)} on the held-out samples"
            if report.reference_accuracy is not None
            else ""
        ),
        "  ".join(h.ljust(w) for h, w in zip(HEADER, widths)).rstrip(),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines += [f"  {n}" for n in notes]
    if missing:
        lines.append(f"  {unavailable_summary(missing, report.build)}")
    if report.int8 is not None:
        lines += format_int8(report.int8)
    counts = {s: sum(r.status == s for r in report.runtimes) for s in ("PASS", FAIL, UNAVAILABLE)}
    warned = sum(r.status == WARN for r in report.runtimes)
    lines.append(
        f"verify: {'PASS' if report.passed else 'FAIL'} ({counts['PASS']} pass, "
        f"{counts[FAIL]} fail, "
        + (f"{warned} warn, " if warned else "")
        + f"{counts[UNAVAILABLE]} unavailable) in {report.seconds:.1f} s"
    )
    return "\n".join(lines)


def unavailable_summary(names: list[str], build: str) -> str:
    """`3 runtimes unavailable here: a, b, c; lenetc verify --explain BUILD says why ...`"""
    import shlex

    count = f"{len(names)} runtime{'s' if len(names) != 1 else ''}"
    return (
        f"{count} unavailable here: {', '.join(names)}; `lenetc verify --explain "
        f"{shlex.quote(str(build))}` says why and how to install them"
    )


INT8_HEADER = (
    "int8 runtime",
    "artifact",
    "reference",
    "max steps",
    "tolerance",
    "differ",
    "accuracy",
    "result",
)


def format_int8(r) -> list[str]:
    """The int8 rows (in quantization steps of the output), the task-level proof and SQNR."""
    rows, notes = [], []
    for row in r.rows:
        if row.max_steps is None:
            result = "n/a" if row.status == UNAVAILABLE else row.status
            rows.append(
                (
                    row.runtime,
                    row.artifact,
                    row.rounding,
                    "-",
                    f"{row.tolerance_steps:g}",
                    "",
                    "",
                    result,
                )
            )
            notes.append(f"{row.runtime}: {row.status}: {row.reason}")
            continue
        rows.append(
            (
                row.runtime,
                row.artifact,
                row.rounding,
                f"{row.max_steps:g}",
                f"{row.tolerance_steps:g}",
                f"{row.elements_off}/{row.elements}",
                _pct(row.accuracy),
                row.status,
            )
        )
    widths = [max(len(x[i]) for x in rows + [INT8_HEADER]) for i in range(len(INT8_HEADER))]
    lines = [
        f"int8: {r.artifact} against the numpy integer reference, in steps of the output "
        f"(scale {r.output_scale:.4g}); rounding: fixed = gemmlowp's (the C variant), float = "
        "ONNX Runtime's",
        "  ".join(h.ljust(w) for h, w in zip(INT8_HEADER, widths)).rstrip(),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in rows]
    lines += [f"  {n}" for n in notes]
    if r.drop_points is not None:
        verdict = "PASS" if r.drop_points <= r.max_drop else "FAIL"
        lines.append(
            f"int8 on {r.test_samples} test samples: float {_pct(r.float_accuracy)}, int8 "
            f"{_pct(r.int8_accuracy)}, drop {r.drop_points:.2f} points (limit {r.max_drop:g}): "
            f"{verdict}; argmax agreement with float {_pct(r.argmax_agreement)}"
        )
    if r.sqnr:
        lines.append(f"int8 SQNR per layer on {r.calibration_samples} calibration samples:")
        for row in r.sqnr:
            names = ", ".join(row["layers"])
            db = "exact" if row["sqnr_db"] is None else f"{row['sqnr_db']:.1f} dB"
            lines.append(
                f"  {names} ({row['type']}, line {row['line']}): {db} (loses {row['lost_db']:.1f})"
            )
    if r.hint:
        lines.append(f"  hint: {r.hint}")
    if r.bytes:
        f, q = r.bytes.get("model.onnx", 0), r.bytes.get(r.artifact, 0)
        lines.append(f"int8 size: {r.artifact} {q:,} bytes = {q / f:.2f}x model.onnx ({f:,})")
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
