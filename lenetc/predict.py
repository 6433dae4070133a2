"""predict: a build folder's model.onnx and input files -> a label and probabilities per sample.

Takes BUILD_DIR and .npy / .pgm / .ppm / .pnm files (Netpbm, P2/P3/P5/P6). Everything needed to
feed the model comes from model.onnx's metadata_props (onnx_meta.py): the sample shape, the
normalization (mean, std per channel, from the training split) and the class labels, so that
the ONNX file stands on its own. Runs onnxruntime only, no model.py. A build folder must first pass
the integrity checks `lenetc verify` runs (verify/agreement.py, which imports torch to read
weights.pt; IntegrityFailure, exit 4), the parameters compared for model.onnx alone (the model it
runs; TorchScript's and torch.export's loaders would double its time); a folder holding only
model.onnx is taken as it is.

Raw inputs: a .npy holds one sample (C, H, W) or a batch (N, C, H, W) of raw values in the
dataset's scale (input_range in the metadata; `normalized=True` skips normalization for arrays
that are already model inputs, such as io.npz's); a uint8 array is scaled by 1/255 first, as
training scales 8-bit data. An image's pixels 0..maxval are mapped onto input_range; its size
must equal the model's (no resizing). PNG and JPEG are read through Pillow when it is installed
(`lenetc[images]`); without it, one line says how to install it or convert the file. Inputs must
be regular files: a FIFO or a device (/dev/zero) is refused, never read.

A bad input file is exit 2 (UsageError) with one line naming it: unreadable or empty .npy files,
NaN or infinity in a sample (or a value float32 cannot hold), a malformed Netpbm header (a maxval
of 0 or over 65535, a size that is not a positive number or that the file cannot hold), and an
input that drives the model's output to NaN or infinity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import not_a_regular_file
from .errors import RuntimeFailure, UsageError, first_line
from .export.onnx_meta import ModelInfo, read

NETPBM = {".pgm", ".ppm", ".pnm", ".pbm"}
IMAGES = {".png", ".jpg", ".jpeg"}  # through Pillow, when installed (lenetc[images])
SUPPORTED = ".npy, .pgm, .ppm, .pnm, .png, .jpg"
PILLOW_INSTALL = "pip install 'lenetc[images]' (Pillow), or convert it to .pgm or .npy"


@dataclass(frozen=True)
class Prediction:
    source: str  # "file" or "file[i]" for a row of a batch
    label: str
    index: int
    probabilities: np.ndarray  # float64, sums to 1


def predict(
    build_dir: Path, inputs: list[Path], normalized: bool = False, int8: bool = False
) -> tuple[ModelInfo, list[Prediction]]:
    session, info = open_model(build_dir, int8)
    batches = [load_input(Path(path), info, normalized) for path in inputs]  # fail before running
    predictions = []
    for path, x in zip(inputs, batches):
        out = session.run([info.output_name], {info.input_name: x})[0]
        with np.errstate(all="ignore"):
            probs = to_probabilities(out.astype(np.float64), info.output_kind)
        bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
        if bad.size:
            raise UsageError(
                f"{path}: sample {int(bad[0])} drives the model's output to NaN or infinity "
                f"(its values are far outside the training range {list(info.input_range)})"
            )
        for i, p in enumerate(probs):
            k = int(np.argmax(p))
            name = f"{path}[{i}]" if len(probs) > 1 else str(path)
            label = info.labels[k] if k < len(info.labels) else str(k)
            predictions.append(Prediction(name, label, k, p))
    return info, predictions


def open_model(build_dir: Path, int8: bool = False):
    """model.onnx's session and facts; with int8, model.int8.onnx's session (the facts, its
    input's shape and normalization, stay model.onnx's: the QDQ model takes the same input)."""
    onnx_path = Path(build_dir) / "model.onnx"
    if not onnx_path.is_file():
        raise RuntimeFailure(f"{build_dir} has no model.onnx; run `lenetc build` first")
    _as_built(Path(build_dir))
    session = _session(onnx_path)
    info = read(session.get_modelmeta().custom_metadata_map, str(onnx_path))
    if int8:
        int8_path = Path(build_dir) / "model.int8.onnx"
        if not int8_path.is_file():
            raise RuntimeFailure(
                f"{build_dir} has no model.int8.onnx; build with --int8 or a quantize: section"
            )
        session = _session(int8_path)
    return session, info


def _session(path: Path):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RuntimeFailure(f"onnxruntime cannot load {path}: {first_line(exc)}") from None


def _as_built(build_dir: Path) -> None:
    """A build folder (it has manifest.json or spec.yaml) must pass the integrity checks verify
    runs (exit 4): an edited normalization or weight would otherwise give wrong answers with exit
    0. A folder holding a lone model.onnx is taken as it is."""
    if (build_dir / "manifest.json").exists() or (build_dir / "spec.yaml").exists():
        from .verify.agreement import check_build  # torch, for weights.pt: only in a build folder

        check_build(build_dir, uses=("model.onnx",))  # not the other artifacts' slow loaders


def load_input(path: Path, info: ModelInfo, normalized: bool = False) -> np.ndarray:
    """A (N, *sample_shape) float32 batch, normalized as in training, from one file."""
    why = not_a_regular_file(path)
    if why is not None:
        raise UsageError(f"{path}: {why}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            why = "it is empty" if isinstance(exc, EOFError) else first_line(exc)
            raise UsageError(f"{path}: not a readable .npy file ({why})") from None
        if raw.dtype.kind not in "uifb":
            raise UsageError(f"{path}: holds {raw.dtype} values, not numbers")
        # the rule training applies to every dataset (train/datasets.py): 8-bit pixels / 255
        x = raw.astype(np.float64) / 255.0 if raw.dtype == np.uint8 else raw.astype(np.float64)
    elif suffix in NETPBM or suffix in IMAGES:
        image = read_netpbm(path) if suffix in NETPBM else read_image(path, info.sample_shape)
        if len(info.sample_shape) == 1 and image.size == info.sample_shape[0]:
            image = image.reshape(
                info.sample_shape
            )  # an MLP reads an image flattened, as in training
        x = _image_to_range(image, info)
    else:
        raise UsageError(f"{path}: unsupported file type '{suffix or '(none)'}'; use {SUPPORTED}")
    x = _as_batch(x, info.sample_shape, path)
    _refuse_non_finite(x, path, "")
    if not normalized:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        x = (x - np.asarray(info.mean).reshape(shape)) / np.asarray(info.std).reshape(shape)
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    _refuse_non_finite(x, path, ", beyond float32 once normalized")
    return x


def _refuse_non_finite(x: np.ndarray, path: Path, why: str) -> None:
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        where = [int(j) for j in np.unravel_index(int(np.argmax(bad[i])), x.shape[1:])]
        raise UsageError(
            f"{path}: sample {i} is not finite{why} (the first bad value is at {where}); "
            "the model takes finite numbers only"
        )


def _as_batch(x: np.ndarray, sample: tuple[int, ...], path: Path) -> np.ndarray:
    if x.shape == sample:
        return x[None]
    if x.ndim == len(sample) + 1 and x.shape[1:] == sample and x.shape[0] > 0:
        return x
    if len(sample) == 3 and sample[0] == 1 and x.shape == sample[1:]:
        return x[None, None]  # a grayscale (H, W) array: one channel
    want = " x ".join(map(str, sample))
    raise UsageError(
        f"{path}: shape {tuple(x.shape)} is neither one sample ({want}) nor a batch (N x {want})"
    )


def _image_to_range(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """Pixels (C, H, W) in 0..1 -> the raw scale the model was trained on (input_range)."""
    lo, hi = info.input_range
    return lo + image * (hi - lo)


def read_image(path: Path, sample: tuple[int, ...]) -> np.ndarray:
    """A PNG or JPEG through Pillow -> (C, H, W) float64 in [0, 1], as training reads pixels:
    8-bit values / 255 (16-bit grayscale / 65535). A one-channel model gets Pillow's grayscale
    ("L": ITU-R 601-2 luma; alpha dropped), a three-channel one RGB, a grayscale image repeated
    into its channels (as `fit` does). No resizing: the size must be the model's, checked
    before the pixels are decoded (so a decompression bomb is refused, not decoded)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UsageError(f"{path}: reading PNG/JPEG needs Pillow: {PILLOW_INSTALL}") from None
    channels = sample[0] if len(sample) == 3 else 1
    if channels not in (1, 3):
        raise UsageError(f"{path}: the model takes {channels} channels; an image gives 1 or 3")
    try:
        with Image.open(path) as im:
            if len(sample) == 3 and im.size != (sample[2], sample[1]):
                raise UsageError(
                    f"{path}: the image is {im.size[0]} x {im.size[1]} pixels; the model takes "
                    f"{sample[2]} x {sample[1]} (width x height): resize it first (lenetc does "
                    "not resize, so that what the model sees is what you gave it)"
                )
            if channels == 1 and im.mode.startswith("I"):  # 16-bit grayscale
                pixels = np.asarray(im, dtype=np.float64)[None] / 65535.0
            elif channels == 1:
                pixels = np.asarray(im.convert("L"), dtype=np.float64)[None] / 255.0
            else:
                rgb = im.convert("RGB")
                pixels = np.asarray(rgb, dtype=np.float64).transpose(2, 0, 1) / 255.0
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise UsageError(f"{path}: not a readable image ({first_line(exc)})") from None
    return pixels


def read_netpbm(path: Path) -> np.ndarray:
    """A PGM/PPM/PBM file (ASCII P1-P3 or binary P4-P6) -> (C, H, W) float64 in [0, 1]."""
    data = path.read_bytes()
    magic = data[:2]
    if magic not in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"):
        raise UsageError(f"{path}: not a Netpbm image (starts with {magic!r})")
    kind = int(magic[1:2])
    channels = 3 if kind in (3, 6) else 1
    fields, pos = [], 2
    n_header = 2 if kind in (1, 4) else 3
    while len(fields) < n_header:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        if end == pos:
            raise UsageError(f"{path}: truncated Netpbm header")
        if not data[pos:end].isdigit() or end - pos > 9:
            what = ("width", "height", "maxval")[len(fields)]
            raise UsageError(
                f"{path}: Netpbm {what} is {data[pos:end][:20].decode(errors='replace')!r}, "
                "not a positive whole number below 10^9"
            )
        fields.append(int(data[pos:end]))
        pos = end
    width, height = fields[0], fields[1]
    maxval = fields[2] if n_header == 3 else 1
    if not 1 <= maxval <= 65535:
        raise UsageError(f"{path}: Netpbm maxval is {maxval}; it must be 1 to 65535")
    count = width * height * channels
    if kind in (1, 2, 3):  # plain: a digit per value, and (but P1) a space between them
        room, need = len(data) - pos, count if kind == 1 else 2 * count - 1
    else:  # raw: after one whitespace byte, 1 or 2 bytes per value, P4 a bit per pixel
        room = len(data) - pos - 1
        need = height * -(-width // 8) if kind == 4 else count * (2 if maxval > 255 else 1)
    if width == 0 or height == 0 or need > max(room, 0):
        raise UsageError(
            f"{path}: the Netpbm header says {width} x {height} pixels, which the file's "
            f"{max(room, 0):,} bytes of pixel data cannot hold"
        )
    try:
        if kind in (1, 2, 3):
            values = np.array(data[pos:].split()[:count], dtype=np.float64)
        elif kind == 4:
            bits = np.unpackbits(np.frombuffer(data[pos + 1 :], np.uint8).reshape(height, -1), 1)
            values = bits[:, :width].astype(np.float64).ravel()
        else:
            dtype = np.dtype(">u2") if maxval > 255 else np.uint8
            values = np.frombuffer(data[pos + 1 :], dtype, count).astype(np.float64)
    except ValueError:
        values = np.empty(0)
    if values.size != count:
        raise UsageError(f"{path}: expected {count} pixel values, found {values.size}")
    image = values.reshape(height, width, channels).transpose(2, 0, 1) / maxval
    return 1.0 - image if kind in (1, 4) else image  # PBM: 1 is black


def to_probabilities(out: np.ndarray, kind: str) -> np.ndarray:
    if kind == "probabilities":
        return out
    if kind == "log_probabilities":
        return np.exp(out)
    shifted = out - out.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def format_prediction(p: Prediction, labels: tuple[str, ...], top: int = 10) -> str:
    """`file: 3 (97.12%)  3: 0.9712  8: 0.0150 ...`, most probable first, `top` classes."""
    order = np.argsort(-p.probabilities, kind="stable")[:top]
    names = [labels[i] if i < len(labels) else str(i) for i in range(len(p.probabilities))]
    rest = "  ".join(f"{names[i]}: {p.probabilities[i]:.4f}" for i in order)
    return f"{p.source}: {p.label} ({p.probabilities[p.index]:.2%})  {rest}"


def as_json(predictions: list[Prediction], labels: tuple[str, ...], top: int = 10) -> list[dict]:
    """One object per sample; `probabilities` holds the `top` most probable classes, in order."""
    rows = []
    for p in predictions:
        order = np.argsort(-p.probabilities, kind="stable")[:top]
        rows.append(
            {
                "input": p.source,
                "label": p.label,
                "index": p.index,
                "probabilities": {
                    (labels[i] if i < len(labels) else str(i)): round(float(p.probabilities[i]), 6)
                    for i in order
                },
            }
        )
    return rows
