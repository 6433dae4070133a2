"""Stage 2, check: Spec -> ShapeTrace, every size derived statically and shown.

In: a Spec. Out: `ShapeTrace` (shapes.py): per node its in/out shape, the arithmetic as text
(`(32 - 5 + 1) / 2 = 14`), parameters and FLOPs, from the shape rules in layers/; a located
SpecError when a size does not fit. table.py prints the trace as `lenetc check`'s table or JSON.
No torch import.
"""
