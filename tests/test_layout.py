"""The package's folders are its pipeline: no module imports a stage that comes after its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lenetc"

# Rank of each top-level part of lenetc, in pipeline order. Equal ranks may import each other
# (spec/load.py reads kinds from layers/, layers/ parse keys with spec/fields.py).
RANK = {
    "errors": 0,
    "artifacts": 0,
    "expected_warnings": 0,
    "lock": 0,
    "spec": 1,
    "layers": 1,
    "check": 2,
    "targets": 3,
    "train": 4,
    "export": 5,
    "quant": 5,  # the int8 twin of the exported model, and its integer reference
    "runtimes": 6,
    "verify": 7,
    "predict": 8,
    "look": 8,  # draw reads check's trace; report reads a finished build folder
    "bench": 8,
    "build": 9,
    "cli": 10,
    "__main__": 10,
    "__init__": 0,
}


def _part(module: Path) -> str:
    rel = module.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_parts(module: Path) -> set[str]:
    """The top-level lenetc parts a module imports, relative or absolute, at any depth."""
    tree = ast.parse(module.read_text())
    here = module.relative_to(PACKAGE).parent.parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - (node.level - 1)]) if node.level > 1 else list(here)
                dotted = base + (node.module.split(".") if node.module else [])
                names = [dotted] if dotted else [[a.name] for a in node.names]
                if not node.module and not base:  # from . import x
                    names = [[a.name] for a in node.names]
            elif node.module and node.module.split(".")[0] == "lenetc":
                names = [node.module.split(".")[1:] or [a.name for a in node.names][:1]]
            else:
                continue
            found.update(n[0] for n in names if n)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "lenetc" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_part_of_the_package_has_a_rank():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(RANK), f"give these a place in the pipeline: {sorted(parts - set(RANK))}"


def test_no_module_imports_a_later_stage():
    offences = []
    for module in sorted(PACKAGE.rglob("*.py")):
        own = _part(module)
        for part in _imported_parts(module):
            if part in RANK and RANK[part] > RANK[own]:
                offences.append(f"{module.relative_to(PACKAGE)} imports {part}")
    assert not offences, "\n".join(offences)


def test_every_stage_package_says_what_goes_in_and_out():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "In:" in doc and "Out:" in doc or init.parent.name == "layers", init
