"""Look: pictures of a network and of its build, for people rather than tools.

In: a ShapeTrace (`draw`, no torch import), or a build folder (`report`, `serve`).
Out: the architecture as SVG in the style of the LeNet-5 figure (draw.py, laid out by layout.py),
build/<name>/report.html (report.py: drawing, shapes, curves, confusion, parity, hashes, a live
panel), and a localhost-only server for the panel's in-page ONNX Runtime (serve.py).
"""
