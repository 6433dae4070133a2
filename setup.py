"""Package discovery: every lenetc subpackage, templates/ as lenetc.templates, examples/ likewise.

pyproject.toml holds the metadata; this file exists only because a static package list cannot
both discover lenetc's subpackages and map the top-level templates/ folder into the package.
"""

from setuptools import find_namespace_packages, find_packages, setup

code = find_packages(include=["lenetc", "lenetc.*"])
templates = ["lenetc.templates"] + [
    f"lenetc.templates.{name}" for name in find_namespace_packages(where="templates")
]
examples = ["lenetc.examples"] + [
    f"lenetc.examples.{name}" for name in find_namespace_packages(where="examples")
]
setup(packages=code + templates + examples)
