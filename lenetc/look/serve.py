"""Look (serve): a build folder -> an HTTP server on 127.0.0.1 for report.html's live panel.

A page opened from a file may not fetch model.onnx, so `lenetc serve` serves the build folder
read-only on the loopback interface alone (never 0.0.0.0), plus two things under `_lenetc/`:
`runtime.json` (whether ONNX Runtime Web is installed, and how to get it) and `ort/`, the files
of the pinned npm package onnxruntime-web (js/package-lock.json, installed by `make deps`).
Without them the report still works; the panel says how to get them. No torch import.
"""

from __future__ import annotations

import functools
import json
import os
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
    """The build folder, read-only; `_lenetc/runtime.json` and `_lenetc/ort/<file>` besides."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".onnx": "application/octet-stream",
    }

    def __init__(self, *args, directory: str, dist: Path, quiet: bool, **kwargs) -> None:
        self.dist, self.quiet = dist, quiet
        super().__init__(*args, directory=directory, **kwargs)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == PREFIX + "runtime.json":
            body = json.dumps(runtime_status(self.dist)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def translate_path(self, path: str) -> str:
        route = unquote(urlsplit(path).path)
        if route.startswith(PREFIX + "ort/"):
            name = route[len(PREFIX + "ort/") :]
            if name in RUNTIME_FILES or (name.endswith((".mjs", ".wasm")) and "/" not in name):
                return str(self.dist / name)
            return str(self.dist / ".missing")
        return super().translate_path(path)

    def list_directory(self, path):  # the folder's files are known; no listings
        self.send_error(404, "no directory listings")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def make_server(build_dir: Path, port: int = 8000, quiet: bool = False) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (0: any free port); call serve_forever(), then close."""
    root = Path(build_dir)
    if not (root / "report.html").is_file():
        raise RuntimeFailure(f"{root} has no report.html; run `lenetc report {root}` first")
    handler = functools.partial(Handler, directory=str(root), dist=ort_web_dir(), quiet=quiet)
    try:
        return ThreadingHTTPServer((HOST, port), handler)
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
