"""Stage 3, render: ShapeTrace -> generated source, one module per target.

In: the ShapeTrace from check/. Out: source text (model.py for `torch`; model.h, model.c, main.c,
Makefile and model_weights.h for `c`). The derivation comments (walk.py, over the rules' trees)
are shared; each target (torch.py with values.py, its Python literals; the c/ package) formats the
rules' typed values its own way and brings its layout and its folder of templates
(templates/<target>/, found by templates.py). No torch import.
"""
