"""Stage 4 helper, launch: `lenetc build SPEC --nproc-per-node N` -> torch's elastic launcher.

Takes the spec and the build command's own arguments; runs `torchrun --standalone
--nproc-per-node N --max-restarts 0 -m lenetc build ARGS` through torch.distributed.run itself
(the same parser, rendezvous and LocalElasticAgent torchrun uses; no process pool of our own), and
returns when every rank has finished. The spec is checked here first, so that a bad spec or a
batch that does not divide by N is one error, before any process starts.

How a job ends: the agent watches the ranks every 0.1 s; when one fails or dies it stops the others
(SIGTERM, then SIGKILL after 30 s) and the launcher raises ChildFailedError, which becomes one
RuntimeFailure line naming the rank that failed first and how, and the command that resumes from
the last checkpoint. (The ranks that merely lost it exit quietly: LENETC_RESUME_COMMAND tells them
this launcher reports; under a bare torchrun they say what they saw.)

Ctrl-C reaches the agent, which passes it to every rank once: they finish the batch, rank 0
checkpoints, and the job exits 130 (rank 0 prints where it stopped).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
from pathlib import Path

from ..errors import EXIT_SPEC, LenetcError, RuntimeFailure, UsageError

INTERRUPTED = 130


class JobFailure(LenetcError):
    """The ranks ended with this exit status (a usage error on every rank stays exit 2)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def launch(spec: Path, args: list[str], nproc: int) -> None:
    """Run `lenetc build ARGS` on `nproc` ranks of this node under torch's elastic agent."""
    from ..check.shapes import check
    from ..spec.load import load_spec
    from .distributed import Ranks, check_batch, from_env

    if from_env() is not None:
        raise UsageError(
            "--nproc-per-node starts torchrun itself; under torchrun, leave it out "
            "(torchrun's own --nproc-per-node says how many ranks run)"
        )
    loaded = load_spec(spec)
    check(loaded)
    batch = _override(args, "--batch-size") or loaded.train.batch_size
    check_batch(int(batch), Ranks(0, nproc), loaded.path)

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    resume = ["lenetc", "build", *_without(args, "--resume"), "--nproc-per-node", str(nproc)]
    os.environ["LENETC_RESUME_COMMAND"] = shlex.join([*resume, "--resume"])
    if nproc > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default, said out loud
    torchrun = ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0"]
    # the agent's own log lines (each logger sets its level): the one line below replaces them
    quiet = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run"))
    ]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    try:
        run(parse_args([*torchrun, "-m", "lenetc", "build", *args]))
    except ChildFailedError as exc:
        raise _failure(exc.failures, nproc, os.environ["LENETC_RESUME_COMMAND"]) from None
    except SignalException as exc:
        if exc.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise RuntimeFailure(
            f"the launcher received {exc.sigval.name}; all ranks stopped"
        ) from None
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
        os.environ.pop("LENETC_RESUME_COMMAND", None)


def _failure(failures: dict, nproc: int, resume: str) -> LenetcError:
    codes = {f.exitcode for f in failures.values()}
    if codes == {INTERRUPTED}:
        return JobFailure("training interrupted on every rank", INTERRUPTED)
    if codes == {EXIT_SPEC}:
        return JobFailure("every rank refused the spec or its data (see above)", EXIT_SPEC)

    def cause(item) -> tuple[int, int]:
        rank, f = item
        terminated = f.exitcode in (-signal.SIGTERM, 128 + signal.SIGTERM)
        return (terminated, f.exitcode == 1, f.timestamp, rank)  # first: what was not collateral

    rank, first = min(failures.items(), key=cause)
    if first.exitcode < 0:
        how = f"was killed by {signal.Signals(-first.exitcode).name}"
    else:
        how = f"exited with status {first.exitcode}"
    others = nproc - 1
    text = (
        f"rank {rank} (pid {first.pid}) {how} during the job; the elastic agent stopped the "
        f"other {others} rank{'s' * (others != 1)}, and nothing was exported"
        f"\n  resume from the last checkpoint with: {resume}"
    )
    return RuntimeFailure(text)


def _override(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a == flag:
            return args[i + 1]
    return None


def _without(args: list[str], flag: str) -> list[str]:
    return [a for a in args if a != flag]
