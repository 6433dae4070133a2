"""The pipeline: check, render, train, export, verify, in that order. Only this module knows it.

Takes a spec path and BuildOptions; fills build/<name>/ (see artifacts.BuildDir) and returns a
BuildResult. Each stage is a call into its own module; nothing here computes anything itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import BuildDir, load_module_class, write_bytes, write_text, write_with
from .manifest import write_manifest
from .render import render
from .shapes import check
from .spec import Spec, load_spec


@dataclass(frozen=True)
class BuildOptions:
    out: Path = Path("build")
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    quiet: bool = False


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    test_accuracy: float
    passed: bool
    parity: str = ""  # one line per failing runtime, when parity fails


def with_overrides(spec: Spec, opts: BuildOptions) -> Spec:
    """Apply the command line's --epochs / --batch-size / --lr / --seed to the spec's train:."""
    train = spec.train
    if opts.epochs is not None:
        train = dataclasses.replace(train, epochs=opts.epochs)
    if opts.batch_size is not None:
        train = dataclasses.replace(train, batch_size=opts.batch_size)
    if opts.seed is not None:
        train = dataclasses.replace(train, seed=opts.seed)
    if opts.lr is not None:
        train = dataclasses.replace(
            train, optimizer=dataclasses.replace(train.optimizer, lr=opts.lr)
        )
    return dataclasses.replace(spec, train=train)


def build(spec_path: Path, opts: BuildOptions = BuildOptions(), log=print) -> BuildResult:
    say = (lambda *a, **k: None) if opts.quiet else log
    spec = with_overrides(load_spec(spec_path), opts)
    trace = check(spec)
    out = BuildDir(opts.out / spec.name).create()
    write_bytes(out.spec, Path(spec_path).read_bytes())
    write_text(out.model_py, render(trace))
    say(f"checked {spec.name}: {trace.params:,} parameters; wrote {out.model_py}")

    import torch  # the stages from here on need torch; check and render above must not

    from . import export, train, verify
    from .datasets import load_dataset

    torch.manual_seed(spec.train.seed)
    model = load_module_class(out.model_py, spec.class_name)()
    data = load_dataset(
        spec.train.dataset,
        spec.input_shape,
        trace.num_classes,
        seed=spec.train.seed,
        validation_split=spec.train.validation_split,
        spec_path=spec.path,
    )
    write_with(out.heldout, lambda p: _save_npz(p, x=data.x_test, y=data.y_test))
    say(
        f"training on {data.name}: {len(data.x_train)} train / {len(data.x_val)} validation / "
        f"{len(data.x_test)} test samples"
    )
    result = train.fit(model, data, spec.train, metrics_path=out.metrics, log=say)
    say(f"test accuracy {result.test_accuracy:.2%} ({result.seconds:.1f} s)")
    model.eval()
    exported = export.export_all(model, spec, export.DataFacts.from_dataset(data), out)
    say(exported.summary())
    from .verify_report import format_table

    report = verify.verify_build(out.root)
    say(format_table(report))
    write_manifest(out)  # last: it hashes everything above, verify.json included
    return BuildResult(out.root, result.test_accuracy, report.passed, "\n".join(report.failures()))


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
