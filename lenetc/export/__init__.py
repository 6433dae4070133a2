"""Stage 5, export: the trained module -> the build folder's artifacts.

In: the trained module, its Spec and facts about the data. Out: weights.pt, model.onnx (with the
metadata of onnx_meta.py), model.torchscript.pt, model.pt2 (exporters.py), golden inputs and
outputs (golden_io.py) and manifest.json (manifest.py), each written atomically. failure.py
turns an exporter's exception into one line naming the spec layer.
"""
