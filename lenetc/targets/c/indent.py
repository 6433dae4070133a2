"""Targets (c, indent): C written flush left by the templates -> C indented by its braces, four
spaces a level, as clang-format (.clang-format) leaves it. No torch import."""

from __future__ import annotations

import re


def indent_by_braces(text: str) -> str:
    """Indent C by its braces, four spaces a level (the fragments are written flush left); a
    block comment's inner lines are indented one more space. Strings holding braces are not
    expected here (labels live in model.h)."""
    out, depth, in_comment = [], 0, False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            out.append("")
            continue
        if in_comment:
            out.append(" " * (4 * depth + 1) + line)
            in_comment = "*/" not in line
            continue
        code = re.sub(r"/\*.*?\*/", "", line)
        if "/*" in code:
            in_comment = True
            code = code[: code.index("/*")]
        code = re.sub(r'"(\\.|[^"\\])*"', "", code)
        level = depth - 1 if code.startswith("}") else depth
        out.append(line if line.startswith("#") else " " * (4 * level) + line)
        depth += code.count("{") - code.count("}")
    return "\n".join(out) + "\n"


COLUMNS = 100  # .clang-format's ColumnLimit


def wrap_long_calls(text: str, columns: int = COLUMNS) -> str:
    """Break each code line longer than `columns` after the commas of its first parenthesis, as
    clang-format packs arguments: as many per line as fit, the rest aligned after the `(`."""
    out = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if len(line) <= columns or stripped.startswith(("/*", "*", "#")) or "(" not in line:
            out.append(line)
            continue
        out.extend(_pack(line, columns))
    return "\n".join(out) + "\n"


def _pack(line: str, columns: int) -> list[str]:
    start = line.index("(")
    depth, pieces, begin, end = 0, [], start + 1, len(line)
    for i in range(start, len(line)):
        ch = line[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                end = i
                break
        elif ch == "," and depth == 1:
            pieces.append(line[begin:i].strip())
            begin = i + 1
    pieces.append(line[begin:end].strip())
    tail = line[end:]
    head = line[: start + 1]
    aligned = start + 1
    if any(aligned + len(p) + 1 > columns for p in pieces[:-1]) or (
        aligned + len(pieces[-1]) + len(tail) > columns
    ):
        # an argument too long to align after the `(`: break after it, one indent deeper
        aligned = len(line) - len(line.lstrip()) + 4
        lines, current = [head], " " * aligned + pieces[0]
    else:
        lines, current = [], head + pieces[0]
    for k, piece in enumerate(pieces[1:], start=2):
        after = tail if k == len(pieces) else ","
        if len(current) + 2 + len(piece) + len(after) <= columns:
            current += ", " + piece
        else:
            lines.append(current + ",")
            current = " " * aligned + piece
    lines.append(current + tail)
    return lines
