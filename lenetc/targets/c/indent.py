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
