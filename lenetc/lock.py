"""One command at a time per build folder: the exclusive lock that `build` and `verify` hold.

Takes a build folder and a description of the command ("lenetc build specs/lenet5.yaml"); while
the `folder_lock` context is open, no other lenetc build or verify can hold the same folder, and
one that tries is refused at once (FolderBusy, exit 1) with a message naming the holder.

The lock is flock(2) on the folder itself, opened read-only: it needs no write permission (a
read-only folder can still be verified), it leaves nothing behind that could go stale, and the
kernel releases it when its process ends, however it ends (kill -9 included). Who holds it is
written, best effort, to `.lenetc.lock` beside the artifacts (hidden: no manifest lists it) — pid,
host, command, start time — so that a refused command can say who is in the way. A holder file
left by a killed process names nobody alive; the next command takes the lock and overwrites it.

flock locks belong to an open file description, so two opens in one process exclude each other
too; a command never takes the lock twice (build calls verify's parity stage, not verify's lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import RuntimeFailure

HOLDER = ".lenetc.lock"


class FolderBusy(RuntimeFailure):
    """Another lenetc command holds the build folder (exit 1)."""


@contextlib.contextmanager
def folder_lock(folder: Path, command: str) -> Iterator[None]:
    folder = Path(folder)
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise RuntimeFailure(f"cannot open {folder}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"{folder} is in use by {holder(folder)}") from None
        except OSError:  # a filesystem without flock (some network mounts): run unlocked
            pass
        mine = _announce(folder, command)
        try:
            yield
        finally:
            if mine:
                with contextlib.suppress(OSError):
                    (folder / HOLDER).unlink()
    finally:
        os.close(fd)  # releases the flock


def holder(folder: Path) -> str:
    """Who holds the folder's lock, from its holder file, as a phrase for a message."""
    try:
        info = json.loads((Path(folder) / HOLDER).read_text(encoding="utf-8"))
        pid, command = int(info["pid"]), str(info["command"])
        host, since = str(info["host"]), float(info["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another lenetc command (it has not said which yet); wait for it to finish"
    started = time.strftime("%H:%M:%S UTC", time.gmtime(since))
    where = "" if host == socket.gethostname() else f" on {host}"
    return (
        f"another lenetc command: `{command}` (pid {pid}{where}, since {started}); wait for it "
        "to finish or stop it, or give this command another folder"
    )


def _announce(folder: Path, command: str) -> bool:
    """Write the holder file; False when the folder is read-only (the lock itself still holds)."""
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "since": round(time.time(), 3),
    }
    path = folder / HOLDER
    tmp = folder / f"{HOLDER}.{os.getpid()}"
    try:
        tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True
