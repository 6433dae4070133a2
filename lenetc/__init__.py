"""lenetc: a compiler for small neural networks.

spec.yaml -> spec/ (load) -> check/ (shapes) -> targets/ (render) -> train/ -> export/
          -> runtimes/ + verify/ (parity).
build.py runs the stages in order; cli.py maps errors to exit codes.
"""

__version__ = "0.1.0"
