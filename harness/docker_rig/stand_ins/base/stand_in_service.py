"""What every service stand-in of the rig shares: its log lines, the files it refuses to start
without, small HTTP servers on the ports the real service uses, and a clean stop on SIGTERM.

A stand-in keeps the contract the program relies on (the health-check command, the files, the
ports) and nothing more; each says so in its first log line. Installed in the stand-ins' base
image as a top-level module (harness/docker_rig/stand_ins/base/Dockerfile).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseServer

# What a real server does when a file it needs is missing: stop, non-zero, naming the file.
MISSING_FILE_EXIT = 1


def log(service: str, level: str, message: str, **fields: object) -> None:
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "service": service,
        "msg": message,
        **fields,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def announce(service: str, keeps: str) -> None:
    log(service, "info", f"audit-x rig stand-in for {service}, not the real server; it keeps: {keeps}")


def require_files(service: str, paths: Iterable[str | Path]) -> None:
    """Exit (MISSING_FILE_EXIT) naming the first file that is missing or unreadable to this user."""
    for path in paths:
        try:
            Path(path).read_bytes()
        except OSError as error:
            log(service, "error", f"{path} is missing or not readable: {error.strerror}; not starting", file=str(path))
            sys.exit(MISSING_FILE_EXIT)


def require_directories(service: str, paths: Iterable[str | Path], *, writable: bool) -> None:
    for path in paths:
        directory = Path(path)
        probe = directory / ".stand-in-write-check"
        try:
            if not directory.is_dir():
                raise NotADirectoryError(f"{directory} is not a directory")
            if writable:
                probe.write_text("")
                probe.unlink()
        except OSError as error:
            log(service, "error", f"{directory} is not a usable directory: {error}; not starting", file=str(directory))
            sys.exit(MISSING_FILE_EXIT)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: object) -> Response:
        return cls(status, json.dumps(document).encode(), "application/json")

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode())


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


Route = Callable[[Request], Response]


def http_server(address: tuple[str, int], routes: dict[tuple[str, str], Route]) -> ThreadingHTTPServer:
    """A server answering (method, path) from `routes`, 404 for any other path, 405 for another method."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            route = routes.get((self.command, path))
            if route is None:
                known = any(known_path == path for _, known_path in routes)
                response = Response.text(405 if known else 404, "method not allowed" if known else "not found")
            else:
                headers = {key.lower(): value for key, value in self.headers.items()}
                response = route(Request(self.command, path, query, headers, body))
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815 (http.server's names)

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    return server


def listen_address(value: str, default_port: int) -> tuple[str, int]:
    """`:8080`, `0.0.0.0:8080`, `http://:8080` or `host:port` -> (host, port); "" means every address."""
    value = value.split("://", 1)[-1]
    host, _, port = value.rpartition(":")
    return host, int(port) if port else default_port


def serve_until_stopped(service: str, servers: list[BaseServer]) -> int:
    """Serve every server in a thread of its own until SIGTERM or SIGINT, then close them; 0."""
    stopped = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log(service, "info", f"stopping on {signal.Signals(signum).name}")
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log(service, "info", "serving", addresses=[_address(server) for server in servers])
    stopped.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    return 0


def _address(server: BaseServer) -> str:
    address = getattr(server, "server_address", ("?", 0))
    return f"{address[0]}:{address[1]}"
