"""Stage 6b, verify (agreement): a folder that matches its manifest -> proof that its files agree
with weights.pt and with each other exactly, which re-sealing a manifest cannot fake.

Takes a build folder that integrity.py has passed (spec.yaml renders to model.py, so running
model.py runs lenetc's own code); returns nothing, or raises IntegrityFailure (exit 4) listing
every problem, each naming its file first, when:
- weights.pt is not a state_dict of tensors that model.py loads (read with weights_only=True: a
  pickled object is refused, never run); model.pt2 holds anything torch.export.load would unpickle
  (export/pt2_check.py: refused before it is loaded);
- a parameter of model.onnx (its initializers), model.torchscript.pt, model.pt2 or
  c/model_weights.h is not bit for bit weights.pt's float32 value. The one exception: a layer
  whose batch norm the ONNX exporter folded into it holds the fold of weights.pt's values,
  recomputed here in float64 and matched within FOLD_ULPS float32 ulps;
- io.npz does not hold input, output and label as export writes them: its real rows must be
  heldout.npz's first rows, its random rows those of the build's seed, its outputs what model.py
  with weights.pt computes on its inputs (within OUTPUT_ULPS ulps of the largest output: float32
  summation order differs between machines, a forged output does not hide in that);
  test_data_set_0/ must hold io.npz's arrays exactly, named as model.onnx's graph names them;
- checkpoint.pt (weights_only) holds other weights than weights.pt, or train.json and
  metrics.jsonl disagree with the run it recorded (seed, epochs, best epoch, early stop,
  training time, each epoch's metrics).
`check_build` runs integrity.py, then this: the one definition of an intact folder, for verify,
predict, bench and report. Imports torch; integrity.py does not, and runs first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..artifacts import BuildDir, load_module_class, load_pt
from ..check.shapes import ShapeTrace, check
from ..errors import IntegrityFailure, LenetcError, first_line
from ..expected_warnings import (
    TORCH_EXPORT_LOAD_LOG,
    TORCHSCRIPT_WARNINGS,
    expected_log,
    expected_warnings,
)
from ..export.c_weights import stored_arrays
from ..export.exporters import STATIC_BATCH
from ..export.golden_io import N_RANDOM, N_REAL, RANDOM_SEED_OFFSET, read_test_data
from ..export.pt2_check import pt2_problem
from ..layers import REGISTRY
from ..spec.load import Spec, load_spec
from ..targets.c import WEIGHTS_FILE, read_weights
from .integrity import check_integrity

EPS32 = float(np.finfo(np.float32).eps)
Odd = dict[str, list[Path]]
FOLD_ULPS = 8  # w * gamma / sqrt(var + eps): four float32 roundings, twice over for margin
OUTPUT_ULPS = 32  # golden outputs, in ulps of the largest |output| (LeNet-5's own: 1.5)


def check_build(root: Path, key: Path | None = None, uses: tuple[str, ...] = ()) -> dict:
    """integrity.py's checks, the signature by `key` (a public key file) when given, then these:
    the folder is the build it claims to be. Returns the manifest. `uses` narrows the parameter
    comparison to the artifacts a command runs (predict: model.onnx), sparing the others' slow
    loaders; every other check still runs."""
    manifest = check_integrity(root)
    if key is not None:
        from .signature import check_signature

        check_signature(BuildDir(Path(root)), manifest, key)
    problems = check_agreement(BuildDir(Path(root)), manifest, uses)
    if problems:
        raise IntegrityFailure(problems)
    return manifest


def check_agreement(out: BuildDir, manifest: dict, uses: tuple[str, ...] = ()) -> list[str]:
    spec = load_spec(out.spec)
    trace = check(spec)
    try:
        state, model = _weights(out, spec)
    except IntegrityFailure as exc:
        return exc.problems
    train = json.loads(out.train_json.read_text(encoding="utf-8"))  # integrity read it already
    c_weights = f"{out.c_dir.name}/{WEIGHTS_FILE}"
    checked = set(uses or (out.onnx.name, out.torchscript.name, out.pt2.name, c_weights))
    odd: Odd = {}  # parameter -> the files whose copy of it is not weights.pt's
    compared = [out.checkpoint]
    problems = []
    if out.onnx.name in checked:
        problems += _onnx(out, state, model, spec, odd)
        compared.append(out.onnx)
    for path, read in ((out.torchscript, _torchscript), (out.pt2, _program)):
        if path.name in checked:
            problems += _torch_artifact(path, state, read, odd)
            compared.append(path)
    if c_weights in checked and c_weights in manifest["artifacts"]:
        problems += _c_weights(out, trace, state, odd)
        compared.append(out.c_dir / WEIGHTS_FILE)
    problems += _training(out, state, train, odd)  # before io.npz, whose random rows use its seed
    problems += _golden(out, spec, trace, model, train)
    return _odd_one_out(out, odd, compared) + problems


def _odd_one_out(out: BuildDir, odd: Odd, compared: list[Path]) -> list[str]:
    """A parameter that every compared file holds otherwise: weights.pt is what changed."""
    return [
        f"{out.weights}: {key} differs from every other file's copy of it "
        f"({', '.join(str(p.relative_to(out.root)) for p in compared)}): weights.pt was "
        "changed after the build"
        for key, paths in odd.items()
        if len(compared) > 1 and set(paths) >= set(compared)
    ]


# --- weights.pt and each artifact's parameters -------------------------------------------------


def _weights(out: BuildDir, spec: Spec) -> tuple[dict[str, np.ndarray], torch.nn.Module]:
    """weights.pt as numpy arrays, and model.py's module holding them (eval, float32, CPU)."""
    state = load_pt(out.weights, IntegrityFailure)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise IntegrityFailure(f"{out.weights}: not a state_dict of named tensors")
    model = load_module_class(out.model_py, spec.class_name)()
    want = model.state_dict()
    for key in sorted(set(want) | set(state)):
        if key not in state or key not in want:
            where = "model.py has no" if key not in want else "weights.pt has no"
            raise IntegrityFailure(f"{out.weights}: {where} parameter {key}")
        got, need = state[key], want[key]
        if got.dtype != need.dtype or got.shape != need.shape:
            raise IntegrityFailure(
                f"{out.weights}: {key} is {got.dtype} {tuple(got.shape)}, model.py's is "
                f"{need.dtype} {tuple(need.shape)}"
            )
    model.load_state_dict(state)
    return {k: v.numpy() for k, v in state.items()}, model.eval()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit: dtype, shape and bytes (a NaN equals the same NaN, -0.0 is not 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _differs(path: Path, key: str, got: np.ndarray, want: np.ndarray, odd: Odd) -> str:
    odd.setdefault(key, []).append(path)
    if got.shape != want.shape or got.dtype != want.dtype:
        found = f"{got.dtype} {tuple(got.shape)}, weights.pt's is {want.dtype} {tuple(want.shape)}"
        return f"{path}: parameter {key} is {found}"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    where = (
        [int(i) for i in np.unravel_index(int(np.nanargmax(diff)), diff.shape)] if diff.size else []
    )
    return (
        f"{path}: parameter {key} is not weights.pt's (max |Δ| {np.nanmax(diff):.2e} at {where}); "
        "every artifact holds the trained float32 values exactly"
    )


def _compare(
    path: Path, held: dict[str, np.ndarray], state: dict[str, np.ndarray], odd: Odd
) -> list[str]:
    """A torch artifact's state_dict against weights.pt: the same keys, each bit for bit."""
    problems = [
        f"{path}: holds no parameter {key} (weights.pt has it)" for key in state if key not in held
    ]
    problems += [
        f"{path}: holds a parameter weights.pt does not have: {key}"
        for key in held
        if key not in state
    ]
    for key, want in state.items():
        got = held.get(key)
        if got is not None and not _same(got, want):
            problems.append(_differs(path, key, got, want, odd))
    return problems


def _torch_artifact(path: Path, state: dict[str, np.ndarray], read, odd: Odd) -> list[str]:
    why = pt2_problem(path) if path.suffix == ".pt2" else None
    if why is not None:  # torch.export.load would unpickle it with weights_only=False
        return [f"{path}: {why}: refused, never loaded"]
    try:
        held = read(path)
    except Exception as exc:  # torch raises many types for a damaged archive
        return [
            f"{path}: cannot be loaded to compare with weights.pt ({first_line(exc, typed=True)})"
        ]
    return _compare(path, held, state, odd)


def _torchscript(path: Path) -> dict[str, np.ndarray]:
    with expected_warnings(TORCHSCRIPT_WARNINGS):
        module = torch.jit.load(str(path), map_location="cpu")
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def _program(path: Path) -> dict[str, np.ndarray]:
    with expected_log(TORCH_EXPORT_LOAD_LOG):
        program = torch.export.load(str(path))
    return {k: v.detach().cpu().numpy() for k, v in program.state_dict.items()}


def _onnx(
    out: BuildDir, state: dict[str, np.ndarray], model: torch.nn.Module, spec: Spec, odd: Odd
) -> list[str]:
    """Initializers named as weights.pt's keys, bit for bit; a folded batch norm as its fold."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_model_from_string(out.onnx.read_bytes())  # integrity parsed it already
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    folds = {  # the layer a batch norm folds into -> that batch norm
        n.inputs[0]: n.name for n in spec.nodes if REGISTRY[n.type].folds_into_input
    }
    problems, folded = [], {}  # (an ordered set) the layers to check as their fold
    for key, want in state.items():
        layer = key.rsplit(".", 1)[0]
        got = inits.get(key)
        if got is not None and _same(got, want):
            continue
        if not np.issubdtype(want.dtype, np.floating) and got is None:
            continue  # batch norm's num_batches_tracked: a counter, no part of the graph
        if layer in folds:  # its weight and bias may hold the batch norm's fold
            folded[layer] = True
            continue
        if got is None and layer in folds.values():  # a batch norm folded away
            folded[_key_of(folds, layer)] = True
            continue
        if got is None:
            problems.append(f"{out.onnx}: has no initializer {key} (weights.pt's parameter)")
        else:
            problems.append(_differs(out.onnx, key, got, want, odd))
    for layer in folded:
        problems += _folded(out.onnx, proto, inits, model, layer, folds[layer])
    return problems


def _key_of(folds: dict[str, str], norm: str) -> str:
    return next(layer for layer, bn in folds.items() if bn == norm)


def _folded(path: Path, proto, inits: dict, model, layer: str, norm: str) -> list[str]:
    """`layer`'s weight and bias in the graph = weights.pt's with `norm` folded in:
    w * s and beta + (b - mean) * s, s = gamma / sqrt(var + eps), per output channel."""
    lin, bn = getattr(model, layer), getattr(model, norm)
    with torch.no_grad():
        s = (bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)).numpy()
        w = lin.weight.double().numpy()
        b = lin.bias.double().numpy() if lin.bias is not None else np.zeros_like(s)
        bias = bn.bias.double().numpy() + (b - bn.running_mean.double().numpy()) * s
    weight = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    key = f"{layer}.weight"
    node = next((n for n in proto.graph.node if len(n.input) > 1 and n.input[1] == key), None)
    if key not in inits or node is None:
        return [f"{path}: has no initializer {key} (weights.pt's {layer}, {norm} folded in)"]
    got_bias = inits.get(node.input[2]) if len(node.input) > 2 else None
    beta, mean = bn.bias.detach().double().numpy(), bn.running_mean.double().numpy()
    s_w = np.abs(s).reshape(weight.shape[:1] + (1,) * (w.ndim - 1))
    problems = []
    for name, got, want, size in (  # size: the magnitude each float32 rounding is relative to
        (key, inits[key], weight, np.abs(w) * s_w),
        (f"{layer}'s bias", got_bias, bias, np.abs(beta) + np.abs(b - mean) * np.abs(s)),
    ):
        if got is None or got.shape != want.shape:
            problems.append(f"{path}: {name} is missing, or not shaped as {norm}'s fold")
            continue
        diff = np.abs(got.astype(np.float64) - want)
        if (diff > FOLD_ULPS * EPS32 * size).any() or np.isnan(diff).any():
            problems.append(
                f"{path}: {name} is not weights.pt's {layer} with {norm} folded in "
                f"(max |Δ| {np.nanmax(diff):.2e}; {FOLD_ULPS} float32 ulps allowed)"
            )
    return problems


def _c_weights(
    out: BuildDir, trace: ShapeTrace, state: dict[str, np.ndarray], odd: Odd
) -> list[str]:
    path = out.c_dir / WEIGHTS_FILE
    try:
        want = stored_arrays(trace, {k: torch.from_numpy(v) for k, v in state.items()})
        held = read_weights(path.read_text(encoding="utf-8"))
    except (LenetcError, ValueError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot be compared with weights.pt ({first_line(exc, typed=True)})"]
    problems = [
        f"{path}: has no array {key} (weights.pt's parameter)" for key in want if key not in held
    ]
    problems += [
        f"{path}: holds an array weights.pt does not have: {key}" for key in held if key not in want
    ]
    for key, (shape, values) in want.items():
        if key not in held:
            continue
        got = np.asarray(held[key][3], np.float32)
        need = np.asarray(values, np.float32)
        if tuple(held[key][0]) != tuple(shape) or not _same(got, need):
            problems.append(
                _differs(path, key, got, need, odd)
                if got.shape == need.shape
                else f"{path}: array {key} has another shape than weights.pt's"
            )
    return problems


# --- io.npz and test_data_set_0/ ---------------------------------------------------------------


def _golden(
    out: BuildDir, spec: Spec, trace: ShapeTrace, model: torch.nn.Module, train: dict
) -> list[str]:
    try:
        with np.load(out.io_npz, allow_pickle=False) as held:
            arrays = {k: held[k] for k in held.files}
    except Exception as exc:  # a zip that is not one, a member that is not an array
        return [f"{out.io_npz}: not a readable .npz archive ({first_line(exc, typed=True)})"]
    if sorted(arrays) != ["input", "label", "output"]:
        return [f"{out.io_npz}: holds {sorted(arrays)}, export writes input, output and label"]
    x, y, label = arrays["input"], arrays["output"], arrays["label"]
    try:
        n_test, seed = int(train["samples"]["test"]), int(train["seed"])
    except (KeyError, TypeError, ValueError):
        return [f"{out.train_json}: has no number of test samples or no seed (samples.test, seed)"]
    n_real = min(N_REAL, n_test)
    n = n_real + N_RANDOM if spec.export.dynamic_batch else min(n_real + N_RANDOM, STATIC_BATCH)
    n_real = min(n_real, n)
    shapes = {
        "input": (x, (n, *spec.input_shape), np.float32),
        "output": (y, (n, *trace.output_shape), np.float32),
        "label": (label, (n,), np.int64),
    }
    for name, (a, shape, dtype) in shapes.items():
        if a.shape != shape or a.dtype != dtype:
            return [
                f"{out.io_npz}: {name} is {a.dtype} {a.shape}, export writes "
                f"{np.dtype(dtype)} {shape}"
            ]
    problems = []
    try:
        with np.load(out.heldout, allow_pickle=False) as held:
            hx, hy = held["x"][:n_real], held["y"][:n_real]
    except Exception as exc:  # not a zip, no x or y, an object array
        return [f"{out.heldout}: not the .npz lenetc writes ({first_line(exc, typed=True)})"]
    if not (_same(x[:n_real], hx.astype(np.float32)) and np.array_equal(label[:n_real], hy)):
        problems.append(f"{out.io_npz}: its first {n_real} rows are not heldout.npz's samples")
    rng = np.random.default_rng(seed + RANDOM_SEED_OFFSET)
    noise = rng.standard_normal((N_RANDOM, *spec.input_shape)).astype(np.float32)[: n - n_real]
    if not (_same(x[n_real:], noise) and (label[n_real:] == -1).all()):
        problems.append(f"{out.io_npz}: its random rows are not those of seed {train['seed']} + 1")
    problems += _outputs(out, model, x, y)
    problems += _test_data(out, x, y)
    return problems


def _outputs(out: BuildDir, model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> list[str]:
    """The stored outputs are model.py + weights.pt on the stored inputs: compared with the
    float64 reference, within OUTPUT_ULPS float32 ulps of the largest output."""
    import copy

    with torch.no_grad():
        ref = copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()
    bound = OUTPUT_ULPS * EPS32 * max(1.0, float(np.abs(ref).max(initial=0.0)))
    diff = np.abs(y.astype(np.float64) - ref)
    diff = np.where(np.isnan(diff), np.inf, diff)
    if diff.size and diff.max() > bound:
        where = [int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape)]
        return [
            f"{out.io_npz}: output {where} is not what model.py with weights.pt computes on "
            f"its input (|Δ| {diff.max():.2e}, at most {bound:.1e} allowed)"
        ]
    return []


def _test_data(out: BuildDir, x: np.ndarray, y: np.ndarray) -> list[str]:
    import onnx
    from onnx import TensorProto

    graph = onnx.load_model_from_string(out.onnx.read_bytes()).graph
    problems = []
    try:
        xs, ys = read_test_data(out.test_data)
        names = []
        for file in ("input_0.pb", "output_0.pb"):
            tensor = TensorProto()
            tensor.ParseFromString((out.test_data / file).read_bytes())
            names.append(tensor.name)
    except Exception as exc:  # protobuf's DecodeError, a tensor numpy cannot hold
        return [f"{out.test_data}: not ONNX tensors ({first_line(exc, typed=True)})"]
    for file, got, want, name, graph_name in (
        ("input_0.pb", xs, x, names[0], graph.input[0].name),
        ("output_0.pb", ys, y, names[1], graph.output[0].name),
    ):
        path = out.test_data / file
        if not _same(np.asarray(got), want):
            problems.append(f"{path}: not io.npz's {file.split('_')[0]}")
        elif name != graph_name:
            problems.append(f"{path}: names {name!r}, model.onnx's graph {graph_name!r}")
    return problems


# --- checkpoint.pt, train.json, metrics.jsonl --------------------------------------------------


def _training(out: BuildDir, state: dict[str, np.ndarray], train: dict, odd: Odd) -> list[str]:
    try:
        records = [
            json.loads(line)
            for line in out.metrics.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"{out.metrics}: not the JSON lines lenetc writes ({first_line(exc, typed=True)})"]
    epochs = train.get("epochs")
    if [r.get("epoch") if isinstance(r, dict) else None for r in records] != list(
        range(1, (epochs if isinstance(epochs, int) else -1) + 1)
    ):
        return [f"{out.train_json}: epochs {epochs!r}, but metrics.jsonl records {len(records)}"]
    try:
        saved = load_pt(out.checkpoint, IntegrityFailure)
    except IntegrityFailure as exc:
        return exc.problems
    try:
        loop, identity = saved["loop"], saved["identity"]
        patience = identity["patience"] != "None"
        trained = loop["best_state"] if patience and loop["best_state"] else saved["model"]
        held = {k: v.numpy() for k, v in trained.items()}
        run = {
            "seed": int(identity["seed"]),
            "epochs": loop["epoch"],
            "best_epoch": loop["best_epoch"],
            "stopped_early": loop["stopped_early"],
            "train_seconds": round(loop["seconds"], 3),
        }
        metrics = json.loads(json.dumps(loop["metrics"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return [f"{out.checkpoint}: not a lenetc checkpoint (its training state is incomplete)"]
    problems = [
        p.replace("parameter", "model state", 1).replace("every artifact", "the checkpoint")
        for p in _compare(out.checkpoint, held, state, odd)
    ]
    for key, value in run.items():
        if train.get(key) != value:
            problems.append(
                f"{out.train_json}: {key} is {train.get(key)!r}, but checkpoint.pt's run "
                f"recorded {value!r}"
            )
    if metrics != records:
        epoch = next((i + 1 for i, (a, b) in enumerate(zip(metrics, records)) if a != b), None)
        problems.append(
            f"{out.metrics}: epoch {epoch or len(records)} is not what checkpoint.pt's run recorded"
        )
    return problems
