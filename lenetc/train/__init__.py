"""Stage 4, train: the generated module + a dataset -> trained weights and metrics.

In: the module built from model.py, a DatasetConfig and the TrainConfig. Out: trained weights,
metrics.jsonl and a TrainResult. datasets.py and idx.py load and normalize data (digits, idx,
npz, npy, synthetic; npy.py and streaming.py read files larger than memory batch by batch);
loop.py runs forward, loss, backward and the optimizer step; checkpoint.py saves and restores the
whole training state for an exact --resume; device.py picks CPU or CUDA; distributed.py and
launch.py run the loop once per rank under torchrun, with DDP.
"""
