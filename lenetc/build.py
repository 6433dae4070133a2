"""The pipeline: check, render, train, export, verify, in that order. Only this module knows it.

Takes a spec path and BuildOptions; fills build/<name>/ (see artifacts.BuildDir) and returns a
BuildResult. Each stage is a call into its own module; nothing here computes anything itself.
The folder is locked for the whole build (lock.py); a build first clears what an interrupted run
left (temporaries), and the old verify.json and manifest.json: until the new ones are written,
last, the folder is an unfinished build, not a finished one that changed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import (
    BuildDir,
    module_class_from_source,
    remove_leftovers,
    write_bytes,
    write_json,
    write_text,
    write_with,
)
from .check.buildable import require_trainable
from .check.memory import default_budget, require, user_budget
from .check.shapes import check
from .errors import SpecError
from .export.manifest import write_manifest
from .lock import folder_lock
from .quant.support import require_quantizable
from .spec.config import QuantizeConfig
from .spec.load import Spec, load_spec
from .targets.c import require_static_fits
from .targets.c.footprint import footprints, over_budget
from .targets.torch import render
from .train.distributed import backend_name, check_batch
from .train.distributed import from_env as ranks_from_env


@dataclass(frozen=True)
class BuildOptions:
    out: Path = Path("build")
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    quiet: bool = False
    resume: bool = False  # continue from build/<name>/checkpoint.pt
    progress: bool = False  # a progress bar per epoch on stderr (the CLI: when it is a terminal)
    stop: Callable[[], bool] | None = None  # polled after each batch, as Ctrl-C is; for tests
    runtimes: tuple[str, ...] = ()  # verify only these (--runtime); () = verify.runtimes, or all
    require: tuple[str, ...] = ()  # these must run here (--require)
    memory_budget: int | None = None  # bytes; None: a share of this machine's memory
    device: str | None = None  # --device: overrides train.device (auto | cpu | cuda)
    sign: Path | None = None  # --sign: an ed25519 private key; signs manifest.json (manifest.sig)
    int8: bool = False  # --int8: quantize as a quantize: section with its defaults would


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    test_accuracy: float
    passed: bool
    parity: str = ""  # one line per failing runtime, when parity fails
    rank: int = 0  # under torchrun, this process's rank: only rank 0 exports, verifies, reports


def with_overrides(spec: Spec, opts: BuildOptions) -> Spec:
    """Apply the command line's --epochs / --batch-size / --lr / --seed to the spec's train:."""
    train = spec.train
    if opts.epochs is not None:
        train = dataclasses.replace(train, epochs=opts.epochs)
    if opts.batch_size is not None:
        train = dataclasses.replace(train, batch_size=opts.batch_size)
    if opts.seed is not None:
        train = dataclasses.replace(train, seed=opts.seed)
    if opts.device is not None:
        train = dataclasses.replace(train, device=opts.device)
    if opts.lr is not None:
        train = dataclasses.replace(
            train, optimizer=dataclasses.replace(train.optimizer, lr=opts.lr)
        )
    spec = dataclasses.replace(spec, train=train)
    if opts.int8 and spec.quantize is None:
        spec = dataclasses.replace(spec, quantize=QuantizeConfig())
    return spec


def build(spec_path: Path, opts: BuildOptions = BuildOptions(), log=print) -> BuildResult:
    ranks = ranks_from_env()  # under torchrun: this process's rank; rank 0 alone writes
    main = ranks is None or ranks.main
    say = (lambda *a, **k: None) if opts.quiet or not main else log
    spec = with_overrides(load_spec(spec_path), opts)
    trace = check(spec)
    # before the parameter check: for an int8 request its reason is the more precise
    require_quantizable(spec, "quantize" if spec.quantize and spec.quantize.line else "--int8")
    require_trainable(trace)
    require_static_fits(trace)  # the C target every build writes
    problems = over_budget(trace, footprints(trace))  # the spec's target: budget, before training
    if problems:
        raise SpecError(problems)
    check_batch(spec.train.batch_size, ranks, spec.path)
    budget = default_budget() if opts.memory_budget is None else user_budget(opts.memory_budget)
    require(trace, spec.train, spec.verify, budget)  # before anything is allocated
    if opts.sign is not None and main:  # a key that cannot sign fails now, not after training
        from .verify.signature import load_private_key

        load_private_key(opts.sign)
    out = BuildDir(opts.out / spec.name)
    if not main:  # rank 0 alone locks and writes the folder; the others only train
        return _build(spec_path, spec, trace, out, opts, say, ranks)
    out.refuse_foreign(opts.out)
    out.create()
    with folder_lock(out.root, build_command(spec_path, opts)):
        return _build(spec_path, spec, trace, out, opts, say, ranks)


def _build(spec_path: Path, spec: Spec, trace, out: BuildDir, opts: BuildOptions, say, ranks):
    main = ranks is None or ranks.main
    source = render(trace)
    if main:
        removed = remove_leftovers(out.root)
        if removed:
            say(f"removed what an interrupted run left: {', '.join(removed)}")
        if spec.quantize is None:  # an int8 twin of an earlier build would not match this one
            out.int8_onnx.unlink(missing_ok=True)
            out.calibration.unlink(missing_ok=True)
        for finished in (out.manifest, out.signature, out.verify_json):  # written last
            finished.unlink(missing_ok=True)
        write_bytes(out.spec, Path(spec_path).read_bytes())
        write_text(out.model_py, source)
    say(f"checked {spec.name}: {trace.params:,} parameters; wrote {out.model_py}")

    import torch  # the stages from here on need torch; check and render above must not

    from .export.exporters import DataFacts, export_all
    from .runtimes.footprint import summary as footprint_summary
    from .runtimes.footprint import write_footprint
    from .train.datasets import load_dataset
    from .train.device import choose_device
    from .train.distributed import resume_command, session
    from .train.loop import TrainingInterrupted, TrainIO, fit
    from .train.streaming import heldout
    from .verify.parity import verify_build
    from .verify.table import format_table

    torch.manual_seed(spec.train.seed)  # the initial weights; fit() seeds its own draws
    model = module_class_from_source(source, spec.class_name, out.model_py)()
    data = load_dataset(
        spec.train.dataset,
        spec.input_shape,
        trace.num_classes,
        seed=spec.train.seed,
        validation_split=spec.train.validation_split,
        spec_path=spec.path,
        base_dir=spec.source_dir,
    )
    if main:
        x_held, y_held = heldout(data.x_test, data.y_test)
        write_with(out.heldout, lambda p: _save_npz(p, x=x_held, y=y_held))
    say(
        f"training on {data.name}: {len(data.x_train)} train / {len(data.x_val)} validation / "
        f"{len(data.x_test)} test samples"
    )
    asked_by = "--device" if opts.device is not None else "train.device"
    device = choose_device(spec.train.device, asked_by, ranks.local_rank if ranks else 0)
    say(f"training on {device.describe()}{_world_line(ranks, device, spec.train.batch_size)}")
    try:
        with _ctrl_c_stops(opts.stop, announce=main) as stop, session(ranks, device.device):
            io = TrainIO(
                metrics=out.metrics,
                checkpoint=out.checkpoint,
                resume=opts.resume,
                fingerprint=hashlib.sha256(source.encode()).hexdigest(),  # what model.py holds
                log=say,
                progress=opts.progress and not opts.quiet,
                stop=stop,
                device=str(device.device),
                ranks=ranks,
            )
            result = fit(model, data, spec.train, io)
    except TrainingInterrupted as exc:
        command = resume_command(build_command(spec_path, opts, "--resume"))
        # rank 0 says where it stopped; the others just stop
        raise exc.for_command(command, quiet=not main) from None
    model.to("cpu")  # export and verify run on the CPU, once
    if not main:
        return BuildResult(out.root, result.test_accuracy, True, rank=ranks.rank)
    facts = DataFacts.from_dataset(data)
    summary = _train_summary(spec, data, result, facts)
    summary["device"] = {"trained_on": str(device.device), "why": device.why}
    if ranks is not None:
        summary["distributed"] = {
            "world_size": ranks.world,
            "backend": backend_name(device.device),
            "rank_weights_sha256": list(result.rank_weights),
        }
    write_json(out.train_json, summary)
    say(f"test accuracy {result.test_accuracy:.2%} ({result.seconds:.1f} s of training)")
    model.eval()
    exported = export_all(model, spec, facts, out)
    say(exported.summary())
    say(footprint_summary(write_footprint(out, spec)))  # c/ measured by the cross compiler
    if spec.quantize is not None:
        from .quant.stage import write_int8

        say(write_int8(out, spec, data.x_train))
    report = verify_build(out.root, require=opts.require, runtimes=opts.runtimes)
    say(format_table(report))
    write_manifest(out)  # it hashes everything above, verify.json included
    if opts.sign is not None:
        from .verify.signature import sign_folder

        say(f"signed {out.manifest} with {opts.sign}: {sign_folder(out, opts.sign)}")
    from .look.report import write_report  # a view of the folder, outside the manifest

    write_report(out.root)  # the CLI names it last
    return BuildResult(out.root, result.test_accuracy, report.passed, "\n".join(report.failures()))


def _world_line(ranks, device, batch_size: int) -> str:
    if ranks is None:
        return ""
    return (
        f"; {ranks.world} ranks, DDP over {backend_name(device.device)}, global batch "
        f"{batch_size} = {ranks.world} x {batch_size // ranks.world}"
    )


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def build_command(spec_path: Path, opts: BuildOptions, *more: str) -> str:
    """This build as a command line (the spec, the folder, the overrides), and `more` flags:
    with --resume, the command that continues it exactly."""
    words = ["lenetc", "build", str(spec_path), "-o", str(opts.out)]
    for flag, value in (
        ("--epochs", opts.epochs),
        ("--batch-size", opts.batch_size),
        ("--lr", opts.lr),
        ("--seed", opts.seed),
        ("--device", opts.device),
    ):
        if value is not None:
            words += [flag, repr(value) if isinstance(value, float) else str(value)]
    if opts.int8:
        words.append("--int8")
    return shlex.join(words + list(more))


def _train_summary(spec: Spec, data, result, facts) -> dict:
    """train.json: what was trained on, how it ended, and the held-out test accuracy."""
    return {
        "dataset": data.name,
        "samples": {"train": len(data.x_train), "val": len(data.x_val), "test": len(data.x_test)},
        "epochs": result.epochs,
        "stopped_early": result.stopped_early,
        "best_epoch": result.best_epoch,
        "seed": spec.train.seed,
        "test_loss": result.test_loss,
        "test_accuracy": result.test_accuracy,
        "train_seconds": round(result.seconds, 3),
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "input_range": list(facts.input_range),  # raw min and max of the training split
        "labels": list(data.labels),
    }


@contextlib.contextmanager
def _ctrl_c_stops(
    also: Callable[[], bool] | None, announce: bool = True
) -> Iterator[Callable[[], bool]]:
    """While training, the first Ctrl-C asks the loop to checkpoint and stop after the current
    batch (a KeyboardInterrupt mid-step could leave half-updated weights); a second one aborts
    at once. Outside the main thread signals cannot be caught, and Ctrl-C stays as it was."""
    requested = threading.Event()

    def on_sigint(signum, frame) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        if announce:  # under torchrun, rank 0 speaks for all
            print("stopping after this batch (Ctrl-C again to abort now)", file=sys.stderr)

    def stop() -> bool:
        return requested.is_set() or (also is not None and also())

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:
        previous = None
    try:
        yield stop
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
