"""The command line. The only module that turns errors into exit codes.

0 success, 1 runtime failure, 2 bad spec or usage, 3 parity mismatch. A bad spec prints one
located line per problem and never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_RUNTIME, LenetcError

SPEC = click.Path(path_type=Path, dir_okay=False)


class Group(click.Group):
    """Maps lenetc's errors to their exit codes; anything unexpected exits 1 in one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LenetcError as exc:
            click.echo(f"error: {exc}" if exc.exit_code != 2 else str(exc), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # a bug in lenetc: say so in one line, not a traceback
            click.echo(
                f"error: internal error ({type(exc).__name__}: {exc}); please report it", err=True
            )
            ctx.exit(EXIT_RUNTIME)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lenetc")
def main() -> None:
    """lenetc: check, render, train, export and verify a small network declared in YAML."""


@main.command("check")
@click.argument("spec", type=SPEC)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for tools.")
def check_cmd(spec: Path, as_json: bool) -> None:
    """Check every shape and show how each size is derived. Writes nothing."""
    from .check.shapes import check
    from .check.table import check_json, check_table
    from .spec.load import load_spec

    trace = check(load_spec(spec))
    click.echo(check_json(trace) if as_json else check_table(trace))


@main.command("render")
@click.argument("spec", type=SPEC)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the source here instead of printing it.",
)
def render_cmd(spec: Path, output: Path | None) -> None:
    """Print (or write) the generated PyTorch module."""
    from .artifacts import write_text
    from .check.shapes import check
    from .spec.load import load_spec
    from .targets.torch import render

    source = render(check(load_spec(spec)))
    if output is None:
        click.echo(source, nl=False)
    else:
        write_text(output, source)
        click.echo(f"wrote {output}", err=True)


@main.command("build")
@click.argument("spec", type=SPEC)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("build"),
    show_default=True,
    help="Parent folder of the build folder.",
)
@click.option("--epochs", type=click.IntRange(1, 100_000), help="Override train.epochs.")
@click.option("--batch-size", type=click.IntRange(1, 65_536), help="Override train.batch_size.")
@click.option(
    "--lr", type=click.FloatRange(0, 10, min_open=True), help="Override the learning rate."
)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), help="Override train.seed.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted build from its checkpoint; ends with the same weights.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the result line.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="Override train.device (auto: CUDA when torch can use it).",
)
@click.option(
    "--nproc-per-node",
    type=click.IntRange(1, 1024),
    help="Train on N processes with DDP: starts torch's elastic launcher (torchrun) on this node.",
)
@click.pass_context
def build_cmd(
    ctx: click.Context,
    spec: Path,
    out: Path,
    epochs,
    batch_size,
    lr,
    seed,
    resume,
    quiet: bool,
    device,
    nproc_per_node,
) -> None:
    """Check, render, train, export and verify: the whole pipeline.

    Ctrl-C during training saves a checkpoint after the current batch and exits 130; run the same
    command with --resume to continue. Runs unchanged under torchrun (one process per rank).
    """
    from .build import BuildOptions, build
    from .errors import ParityFailure
    from .train.loop import TrainingInterrupted

    if nproc_per_node is not None:
        from .train.launch import launch

        launch(spec, _rerun_args(ctx, skip="nproc_per_node"), nproc_per_node)
        return

    opts = BuildOptions(
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        quiet=quiet,
        resume=resume,
        progress=sys.stderr.isatty(),
        device=device,
    )
    try:
        result = build(spec, opts)
    except TrainingInterrupted as exc:
        if not getattr(exc, "quiet", False):
            click.echo(str(exc), err=True)
        ctx.exit(130)
    if result.rank != 0:  # under torchrun: rank 0 reports for the job
        return
    if not result.passed:
        raise ParityFailure(
            "parity check failed: " + (result.parity or f"see {result.folder / 'verify.json'}")
        )
    click.echo(f"built {result.folder}: test accuracy {result.test_accuracy:.2%}, parity PASS")


def _rerun_args(ctx: click.Context, skip: str) -> list[str]:
    """The command's own arguments back as a command line, less option `skip`: what each rank
    runs when lenetc starts the launcher itself."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            args[:0] = [str(value)]
        elif param.name == skip or value is None or value is False or value == ():
            continue
        elif param.name == "out" or value != param.default:
            flag = max(param.opts, key=len)
            if getattr(param, "is_flag", False):
                args.append(flag)
            else:
                for item in value if getattr(param, "multiple", False) else [value]:
                    args += [flag, str(item)]
    return args


@main.command("verify")
@click.argument("build_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--atol", type=click.FloatRange(0, 1), help="Override verify.atol of the spec.")
@click.option("--rtol", type=click.FloatRange(0, 1), help="Override verify.rtol of the spec.")
@click.option(
    "--require",
    type=click.Choice(["cpu", "cuda"]),
    multiple=True,
    help="Fail, instead of listing as unavailable, a runtime on this device that cannot run here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print verify.json's object, not the table.")
def verify_cmd(build_dir: Path, atol, rtol, require: tuple[str, ...], as_json: bool) -> None:
    """Prove the exported artifacts compute what the torch module computes."""
    import json

    from .errors import ParityFailure
    from .verify.parity import verify_build
    from .verify.table import format_table, to_json

    report = verify_build(build_dir, atol=atol, rtol=rtol, require=tuple(require))
    click.echo(json.dumps(to_json(report), indent=2) if as_json else format_table(report))
    if not report.passed:
        raise ParityFailure("parity check failed: " + "\n".join(report.failures()))


@main.command("predict")
@click.argument("build_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--normalized",
    is_flag=True,
    help="The .npy inputs are already normalized (as io.npz's are); skip mean/std.",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Probabilities to print per sample, most probable first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list for tools.")
def predict_cmd(build_dir: Path, inputs, normalized: bool, top: int, as_json: bool) -> None:
    """Run the exported model.onnx (onnxruntime only) on .npy or .pgm/.ppm files.

    Each file holds one sample (C, H, W) or a batch (N, C, H, W). The normalization and the class
    labels are read from model.onnx's own metadata. PNG/JPEG need Pillow: convert them first.
    """
    import json

    from .predict import as_json as to_json
    from .predict import format_prediction, predict

    info, predictions = predict(build_dir, list(inputs), normalized=normalized)
    if as_json:
        click.echo(json.dumps(to_json(predictions, info.labels), indent=2))
        return
    for p in predictions:
        click.echo(format_prediction(p, info.labels, top))


if __name__ == "__main__":
    sys.exit(main())
