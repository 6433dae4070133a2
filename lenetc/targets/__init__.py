"""Stage 3, render: ShapeTrace -> generated source, one module per target.

In: the ShapeTrace from check/. Out: source text (model.py for `torch`). The walk over the trace
(walk.py) and the value checks (values.py) are shared; each target module (torch.py) brings its
layout and its folder of templates (templates/<target>/, found by templates.py). No torch import.
"""
