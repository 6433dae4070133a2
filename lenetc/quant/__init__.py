"""Stage 5b, quantize: a trained build -> its int8 twin, and the integer reference that proves it.

In: the float model.onnx, calibration samples from the training split, the Spec and its trace.
Out: model.int8.onnx (QDQ, written by onnxruntime.quantization: qdq.py), c/model_int8.c
(c_export.py), the quantization parameters read back per spec layer (params.py), the numpy
integer reference (reference.py, with the gemmlowp fixed-point arithmetic of fixed.py) and each
layer's SQNR against the float model (sqnr.py). support.py refuses, before training, a spec that
cannot be quantized. The small functions other targets need (ExecuTorch, LiteRT, Cortex-M twins)
are `params.load_quant_model`, `reference.integer_forward` and `fixed.quantized_multiplier`.
"""
