"""The command line. The only module that turns errors into exit codes.

0 success, 1 runtime failure (an incomplete or unreadable build folder included), 2 bad spec or
usage (bad input files to predict included), 3 parity mismatch, 4 integrity failure (a build
folder whose files do not match manifest.json or each other). A bad spec prints one located line
per problem and never a traceback; neither does a library's logging (expected_warnings.py), and a
closed stdout (`lenetc build ... | head -1`) silences the output, not the command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_RUNTIME, LenetcError, first_line, printable
from .expected_warnings import library_logs_in_one_line

SPEC = click.Path(path_type=Path, dir_okay=False)
RUNTIME_OPTION = click.option(
    "--runtime",
    "runtime",
    multiple=True,
    metavar="NAME",
    help="Verify only this runtime (repeatable): tract, openvino, onnxruntime-node, "
    "onnxruntime-web, libtorch, torch, onnxruntime[cpu] ... Default: verify.runtimes, else all.",
)
REQUIRE_OPTION = click.option(
    "--require",
    multiple=True,
    metavar="NAME",
    help="Fail, instead of listing as unavailable, this runtime (or device: cuda) when it cannot "
    "run here (repeatable).",
)


class Group(click.Group):
    """Maps lenetc's errors to their exit codes; anything unexpected exits 1 in one line."""

    def invoke(self, ctx: click.Context):
        try:
            with library_logs_in_one_line():
                return super().invoke(ctx)
        except LenetcError as exc:
            click.echo(printable(f"error: {exc}" if exc.exit_code != 2 else str(exc)), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # a bug in lenetc: say so in one line, not a traceback
            click.echo(
                printable(
                    f"error: internal error ({first_line(exc, typed=True)}); please report it"
                ),
                err=True,
            )
            ctx.exit(EXIT_RUNTIME)


def echo(text: str = "", err: bool = False, nl: bool = True) -> None:
    """click.echo that outlives a closed stdout: the rest of the output goes nowhere, and the
    command carries on (a build piped into `head -1` still trains, exports and verifies).
    Control characters from labels, file names or paths are shown escaped (errors.printable)."""
    try:
        click.echo(printable(text), err=err, nl=nl)
    except BrokenPipeError:
        _silence(sys.stderr if err else sys.stdout)


def _silence(stream) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # later writes and the exit's flush succeed, unread
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


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
    from .errors import SpecError
    from .spec.load import load_spec
    from .targets.c.footprint import footprint_json, footprint_lines, footprints, over_budget

    trace = check(load_spec(spec))
    found = footprints(trace)  # the C target's RAM and flash, from its buffer plan
    problems = over_budget(trace, found)
    if problems:
        raise SpecError(problems)
    if as_json:
        echo(check_json(trace, {"footprint": footprint_json(found)}))
    else:
        echo(check_table(trace) + "\n\n" + "\n".join(footprint_lines(found, trace.spec.target)))


@main.command("render")
@click.argument("spec", type=SPEC)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Write the source here instead of printing it (for --target c: a folder).",
)
@click.option(
    "--target",
    type=click.Choice(["torch", "c"]),
    default="torch",
    show_default=True,
    help="torch: model.py. c: model.h, model.c, main.c and a Makefile (the weights come from a "
    "build); printed: model.c.",
)
def render_cmd(spec: Path, output: str | None, target: str) -> None:
    """Print (or write) the generated PyTorch module, or the C target."""
    from .artifacts import write_text
    from .check.shapes import check
    from .errors import UsageError
    from .spec.load import load_spec

    trace = check(load_spec(spec))
    if target == "c":
        from .targets.c import render_c, write_c

        if output is None:
            echo(render_c(trace)["model.c"], nl=False)
        else:
            from .artifacts import make_folder

            make_folder(Path(output))
            write_c(Path(output), render_c(trace))
            echo(f"wrote {output}/ (model.h, model.c, main.c, Makefile)", err=True)
        return
    from .targets.torch import render

    if output is not None and str(output).endswith(("/", os.sep)):  # Path() drops the slash
        raise UsageError(f"-o {output} names a folder; name the file: {output}model.py")
    source = render(trace)
    if output is None:
        echo(source, nl=False)
    else:
        write_text(Path(output), source)
        echo(f"wrote {output}", err=True)


@main.command("draw")
@click.argument("spec", type=SPEC)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the SVG here instead of printing it.",
)
def draw_cmd(spec: Path, output: Path | None) -> None:
    """Draw the architecture like the LeNet-5 figure, as SVG (from check's shapes; no torch)."""
    from .artifacts import write_text
    from .check.shapes import check
    from .look.draw import draw
    from .spec.load import load_spec

    svg = draw(check(load_spec(spec)))
    if output is None:
        echo(svg, nl=False)
    else:
        write_text(output, svg)
        echo(f"wrote {output}", err=True)


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
@RUNTIME_OPTION
@REQUIRE_OPTION
@click.option(
    "--memory-budget",
    metavar="SIZE",
    help="Memory the build may plan to use (8GB, 512MiB); default: 3/4 of this machine's.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="Override train.device (auto: CUDA when torch can use it).",
)
@click.option(
    "--sign",
    metavar="KEYFILE",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Sign manifest.json with this ed25519 private key (manifest.sig; lenetc keygen).",
)
@click.option(
    "--nproc-per-node",
    type=click.IntRange(1, 1024),
    help="Train on N processes with DDP: starts torch's elastic launcher (torchrun) on this node.",
)
@click.option(
    "--int8",
    is_flag=True,
    help="Also quantize to int8 (model.int8.onnx), as a spec's quantize: section with its "
    "defaults would; verify then proves it.",
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
    runtime: tuple[str, ...],
    require: tuple[str, ...],
    memory_budget: str | None,
    device,
    sign,
    nproc_per_node,
    int8: bool,
) -> None:
    """Check, render, train, export and verify: the whole pipeline.

    Ctrl-C during training saves a checkpoint after the current batch and exits 130; run the same
    command with --resume to continue. Runs unchanged under torchrun (one process per rank).
    """
    from .build import BuildOptions, build
    from .check.memory import parse_size
    from .errors import ParityFailure, UsageError
    from .train.loop import TrainingInterrupted

    try:
        budget = None if memory_budget is None else parse_size(memory_budget)
    except ValueError as exc:
        raise UsageError(f"--memory-budget: {exc}") from None
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
        runtimes=tuple(runtime),
        require=tuple(require),
        memory_budget=budget,
        device=device,
        sign=sign,
        int8=int8,
    )
    try:
        result = build(spec, opts, log=echo)
    except TrainingInterrupted as exc:
        if not exc.quiet:
            echo(str(exc), err=True)
        ctx.exit(130)
    if result.rank != 0:  # under torchrun: rank 0 reports for the job
        return
    if not result.passed:
        raise ParityFailure(
            "parity check failed: " + (result.parity or f"see {result.folder / 'verify.json'}")
        )
    echo(f"built {result.folder}: test accuracy {result.test_accuracy:.2%}, parity PASS")
    echo(f"report: {result.folder / 'report.html'}")


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
@RUNTIME_OPTION
@REQUIRE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print verify.json's object, not the table.")
@click.option(
    "--key",
    metavar="PUBKEY",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Require manifest.sig, signed by this ed25519 public key (build --sign).",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Say why each unavailable runtime cannot run here and how to install it (one line each).",
)
def verify_cmd(
    build_dir: Path,
    atol,
    rtol,
    runtime: tuple[str, ...],
    require: tuple[str, ...],
    as_json: bool,
    key: Path | None,
    explain: bool,
) -> None:
    """Prove the exported artifacts compute what the torch module computes.

    First the folder's integrity: every file against manifest.json, spec.yaml against model.py and
    model.onnx, the ONNX metadata against the spec and train.json, every artifact's parameters
    against weights.pt bit for bit, io.npz, checkpoint.pt and metrics.jsonl against what they
    record (exit 4 when any differs); with --key, manifest.sig too.
    """
    import json

    from .errors import ParityFailure
    from .verify.folder import verify_folder
    from .verify.table import format_table, to_json

    report, notes = verify_folder(
        build_dir, atol=atol, rtol=rtol, require=tuple(require), runtimes=tuple(runtime), key=key
    )
    echo(json.dumps(to_json(report), indent=2) if as_json else format_table(report, explain))
    for note in notes:
        echo(f"note: {note}", err=True)
    if not report.passed:
        raise ParityFailure("parity check failed: " + "\n".join(report.failures()))


@main.command("keygen")
@click.argument("keyfile", type=click.Path(path_type=Path, dir_okay=False))
def keygen_cmd(keyfile: Path) -> None:
    """Write a new ed25519 key pair: KEYFILE (private, 0600) and KEYFILE.pub, for build --sign
    and verify --key. Needs the sign extra: pip install 'lenetc[sign]'."""
    from .verify.signature import keygen

    private, public = keygen(keyfile)
    echo(f"wrote {private} (private: keep it secret) and {public} (give it to verifiers)")


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
@click.option("--int8", is_flag=True, help="Run model.int8.onnx (built with --int8) instead.")
def predict_cmd(
    build_dir: Path, inputs, normalized: bool, top: int, as_json: bool, int8: bool
) -> None:
    """Run the exported model.onnx (onnxruntime only) on .npy, .pgm/.ppm or .png/.jpg files.

    Each file holds one sample (C, H, W) or a batch (N, C, H, W); uint8 arrays are scaled by 1/255
    as training scales them. The normalization and the class labels are read from model.onnx's own
    metadata. PNG/JPEG are read through Pillow (pip install 'lenetc[images]').
    """
    import json

    from .predict import as_json as to_json
    from .predict import format_prediction, predict

    info, predictions = predict(build_dir, list(inputs), normalized=normalized, int8=int8)
    if as_json:
        echo(json.dumps(to_json(predictions, info.labels, top), indent=2, allow_nan=False))
        return
    for p in predictions:
        echo(format_prediction(p, info.labels, top))


BUILD_DIR = click.Path(path_type=Path, file_okay=False, exists=True)


@main.command("report")
@click.argument("build_dir", type=BUILD_DIR)
def report_cmd(build_dir: Path) -> None:
    """Rewrite BUILD_DIR/report.html from the folder: drawing, curves, confusion, parity, hashes.

    The folder's integrity is checked first, as verify does (exit 4, and no page, when it fails).
    """
    from .look.report import refresh_report

    echo(f"wrote {refresh_report(build_dir)}")


@main.command("serve")
@click.argument("build_dir", type=BUILD_DIR)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
def serve_cmd(build_dir: Path, port: int) -> None:
    """Serve BUILD_DIR on 127.0.0.1 only, for report.html's live panel. Ctrl-C stops it."""
    from .look.report import write_report
    from .look.serve import make_server, url

    if not (build_dir / "report.html").is_file():
        write_report(build_dir)
    server = make_server(build_dir, port)
    echo(f"serving {build_dir} at {url(server)} (127.0.0.1 only; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("stopped", err=True)
    finally:
        server.server_close()


@main.command("bench")
@click.argument("build_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--threads", type=click.IntRange(1, 1024), default=1, show_default=True, help="Per runtime."
)
@click.option(
    "--batch",
    "batches",
    type=click.IntRange(1, 65_536),
    multiple=True,
    help="Batch sizes (repeatable); the first is the latency column. Default: 1, 16, 256.",
)
@click.option("--repeats", type=click.IntRange(3, 1000), default=7, show_default=True)
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    metavar="NAME",
    help="Bench only this runtime (repeatable): c, qemu, onnxruntime[cpu] ... Default: every CPU "
    "runtime (torch eager among them, the baseline of the ratios).",
)
@click.option("--json", "as_json", is_flag=True, help="Print bench.json's object, not the table.")
def bench_cmd(
    build_dir: Path, threads: int, batches, repeats: int, runtimes: tuple[str, ...], as_json: bool
) -> None:
    """Latency and throughput of every runtime that can run here, as ratios to torch eager.

    Writes bench.json into the build folder.
    """
    import json

    from .artifacts import write_json
    from .bench import BATCHES, bench_build, format_table, to_json
    from .lock import folder_lock
    from .verify.integrity import require_build_folder

    require_build_folder(build_dir)
    with folder_lock(build_dir, f"lenetc bench {build_dir}"):  # it writes bench.json there
        report = bench_build(
            build_dir,
            threads=threads,
            batches=tuple(batches) or BATCHES,
            repeats=repeats,
            runtimes=runtimes,
            progress=sys.stderr.isatty(),
        )
        data = to_json(report)
        write_json(build_dir / "bench.json", data)
    echo(json.dumps(data, indent=2) if as_json else format_table(report))


if __name__ == "__main__":
    sys.exit(main())
