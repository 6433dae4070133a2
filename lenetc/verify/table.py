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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
