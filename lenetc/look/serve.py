"""Look (serve): a build folder -> an HTTP server on 127.0.0.1 for report.html's live panel.

A page opened from a file may not fetch model.onnx, so `lenetc serve` serves the build folder
read-only on the loopback interface alone (never 0.0.0.0), plus two things under `_lenetc/`:
`runtime.json` (whether ONNX Runtime Web is installed, and how to get it) and `ort/`, the files
of the pinned npm package onnxruntime-web (js/package-lock.json, installed by `make deps`).
Without them the report still works; the panel says how to get them. No torch import.

What it serves and to whom: only report.html and the files manifest.json lists (read when the
server starts), never through a symlink and never a listing; a request whose Host header is not
127.0.0.1 or localhost with the server's port is refused (403: a DNS-rebinding page cannot read
the folder), and a malformed path (NUL, `..`, a backslash, control characters) is 400. A
request that goes wrong is one log line, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import RuntimeFailure

HOST = "127.0.0.1"
PREFIX = "/_lenetc/"
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
INSTALL = "make deps (npm ci in js/)"


def ort_web_dir() -> Path:
    """onnxruntime-web's dist/ folder: $LENETC_ORT_WEB, or js/node_modules in a checkout."""
    given = os.environ.get("LENETC_ORT_WEB")
    if given:
        return Path(given)
    return Path(__file__).resolve().parents[2] / "js" / "node_modules" / "onnxruntime-web" / "dist"


def runtime_status(dist: Path) -> dict:
    missing = [name for name in RUNTIME_FILES if not (dist / name).is_file()]
    if missing:
        return {
            "available": False,
            "message": "The live panel needs ONNX Runtime Web, which is not installed here "
            f"({dist / missing[0]} is missing): run {INSTALL} in the lenetc checkout, or set "
            "LENETC_ORT_WEB to onnxruntime-web's dist/ folder, then lenetc serve again. The "
            "rest of the report works without it.",
        }
    try:
        version = json.loads((dist.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        version = "(unknown version)"
    return {
        "available": True,
        "version": version,
        "script": PREFIX.lstrip("/") + "ort/" + RUNTIME_FILES[0],
        "base": PREFIX.lstrip("/") + "ort/",
    }


class Handler(SimpleHTTPRequestHandler):
    """report.html and the manifest's files, read-only; `_lenetc/runtime.json` and
    `_lenetc/ort/<file>` besides. Everything else is 404."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".onnx": "application/octet-stream",
    }

    def __init__(
        self, *args, directory: str, dist: Path, quiet: bool, files: frozenset[str], **kwargs
    ) -> None:
        self.dist, self.quiet, self.files = dist, quiet, files
        super().__init__(*args, directory=directory, **kwargs)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        if not self._host_allowed():
            self.send_error(403, "this server answers only to 127.0.0.1 and localhost")
            return
        route = _route(self.path)
        if route is None:
            self.send_error(400, "malformed path")
            return
        if route == PREFIX + "runtime.json":
            data = json.dumps(runtime_status(self.dist)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
            return
        path = self._file_for(route)
        if path is None:
            self.send_error(404, "not found")
            return
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            self.send_error(404, "not found")
            return
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                self.send_error(404, "not found")
                return
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Length", str(info.st_size))
            self.end_headers()
            if body:
                self.copyfile(handle, self.wfile)

    def _host_allowed(self) -> bool:
        """DNS rebinding: a page from elsewhere whose name now points at 127.0.0.1 sends its own
        name as Host; a browser on this machine sends 127.0.0.1:PORT or localhost:PORT."""
        port = self.server.server_address[1]
        host = (self.headers.get("Host") or "").strip().lower()
        allowed = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if port == 80:
            allowed |= {"127.0.0.1", "localhost"}
        return host in allowed

    def _file_for(self, route: str) -> Path | None:
        """The file a route names, when it is one this server serves; no symlink on the way."""
        if route.startswith(PREFIX + "ort/"):
            name = route[len(PREFIX + "ort/") :]
            if name in RUNTIME_FILES or (name.endswith((".mjs", ".wasm")) and "/" not in name):
                return self.dist / name
            return None
        relative = route.lstrip("/")
        if relative not in self.files:
            return None
        root = Path(self.directory)
        path = root
        for part in relative.split("/"):
            path = path / part
            if path.is_symlink():
                return None
        return path

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def _route(raw: str) -> str | None:
    """The request's path, decoded, or None when it is malformed (NUL or another control
    character, a backslash, an empty, `.` or `..` segment)."""
    try:
        route = unquote(urlsplit(raw).path, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    if not route.startswith("/") or "\\" in route:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in route):
        return None
    parts = route[1:].split("/")
    if route != "/" and any(part in ("", ".", "..") for part in parts):
        return None
    return route


def served_files(root: Path) -> frozenset[str]:
    """report.html and every file manifest.json lists (none but the report without one)."""
    names = {"report.html"}
    try:
        listed = json.loads((root / "manifest.json").read_text(encoding="utf-8"))["artifacts"]
        names |= {str(name) for name in listed}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return frozenset(n for n in names if _route("/" + n) is not None)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A request that fails in a way the handler did not foresee: one line, no traceback."""
        kind, exc = sys.exc_info()[:2]
        print(f"lenetc serve: a request from {client_address[0]} failed "
              f"({kind.__name__ if kind else 'error'}: {exc})", file=sys.stderr)  # fmt: skip


def make_server(build_dir: Path, port: int = 8000, quiet: bool = False) -> Server:
    """A server bound to 127.0.0.1:port (0: any free port); call serve_forever(), then close."""
    root = Path(build_dir)
    if not (root / "report.html").is_file():
        raise RuntimeFailure(f"{root} has no report.html; run `lenetc report {root}` first")
    handler = functools.partial(
        Handler, directory=str(root), dist=ort_web_dir(), quiet=quiet, files=served_files(root)
    )
    try:
        return Server((HOST, port), handler)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot serve on {HOST}:{port}: {exc.strerror or exc}; try --port 0 for any free port"
        ) from None


def url(server: ThreadingHTTPServer) -> str:
    return f"http://{HOST}:{server.server_address[1]}/report.html"


def serve_in_thread(build_dir: Path, port: int = 0, quiet: bool = True):
    """For tests and tools: (server, thread); stop with server.shutdown(); server.server_close()."""
    server = make_server(build_dir, port, quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
