"""lenetc: a compiler for small neural networks.

spec.yaml -> load (spec.py) -> check (shapes.py) -> render (render.py) -> train -> export -> verify.
"""

__version__ = "0.1.0"
