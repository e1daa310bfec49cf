"""`bin/rails server`: the web role's endpoints on $PORT (docs/app-contract.md, "Endpoints").

- `/live`: 200 while the process serves; checks nothing behind it.
- `/ready`: 200 once booted, with every migration this image carries applied and both
  connection checks passing at their last attempt; 503 otherwise, with the reasons.
- `/health`: PostgreSQL (`SELECT 1`), Redis (`PING`) and Kafka (an ApiVersions request to
  KAFKA_BROKERS), each `{status, latency_ms}`, checked on every request over the URLs the
  launcher completed, as the Rails app's own clients use them; 503 when any fails.
- `/stand-in/connections`: the connection check's counts since start (connections.py).
- `/stand-in/environment`: the contract's variables as the process sees them, secrets masked.
- `/`: the release and role, for smoke tests through the edge.

Every request is one JSON log line with its `request_id`: the X-Request-Id it came with (as
ActionDispatch::RequestId keeps it) or a new one, sent back in X-Request-Id.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import kafka_wire, postgres_wire, redis_resp
from .connections import ConnectionMonitor
from .environment import endpoints_from_urls, shown_environment
from .logs import log
from .migrations import pending, told_to_fail

# ActionDispatch::RequestId keeps an incoming id made of these, up to 255 of them.
REQUEST_ID = re.compile(r"[\w\-@]{1,255}")
CHECK_TIMEOUT_SECONDS = 2.0


def timed(check: Callable[[], None]) -> dict[str, object]:
    started = time.monotonic()
    try:
        check()
        status = "ok"
    except Exception:  # noqa: BLE001 (any failure of a dependency is "error", as the contract's sketch)
        status = "error"
    return {"status": status, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def postgres_select_one() -> None:
    with postgres_wire.connect(endpoints_from_urls().postgres, CHECK_TIMEOUT_SECONDS) as connection:
        if connection.query("SELECT 1") != [("1",)]:
            raise postgres_wire.PostgresError("SELECT 1 did not return 1")


def redis_ping() -> None:
    with redis_resp.connect(endpoints_from_urls().redis, CHECK_TIMEOUT_SECONDS) as connection:
        if connection.command("PING") != "PONG":
            raise redis_resp.RedisError("PING did not return PONG")


def kafka_api_versions() -> None:
    host, port = endpoints_from_urls().kafka[0]
    kafka_wire.check_broker(host, port, CHECK_TIMEOUT_SECONDS)


HEALTH_CHECKS: dict[str, Callable[[], None]] = {
    "postgres": postgres_select_one,
    "redis": redis_ping,
    "kafka": kafka_api_versions,
}


class WebApp:
    def __init__(self, monitor: ConnectionMonitor) -> None:
        self.monitor = monitor
        self.booted = False

    def ready(self) -> tuple[int, dict[str, object]]:
        reasons = []
        if not self.booted:
            reasons.append("booting")
        if not self.monitor.all_ok():
            reasons.append("a connection check is failing")
        try:
            with postgres_wire.connect(endpoints_from_urls().postgres, CHECK_TIMEOUT_SECONDS) as connection:
                missing = pending(connection)
            if missing:
                reasons.append(f"migrations pending: {', '.join(missing)}")
        except (OSError, postgres_wire.PostgresError) as error:
            reasons.append(f"migrations unknown: {type(error).__name__}")
        if told_to_fail("ready"):
            reasons.append("told to fail /ready")
        return (503 if reasons else 200), {"ready": not reasons, "reasons": reasons}

    def health(self) -> tuple[int, dict[str, object]]:
        results = {name: timed(check) for name, check in HEALTH_CHECKS.items()}
        all_ok = all(result["status"] == "ok" for result in results.values())
        return (200 if all_ok else 503), dict(results)

    def live(self) -> tuple[int, dict[str, object]]:
        return (500, {"live": False}) if told_to_fail("live") else (200, {"live": True})

    def root(self) -> tuple[int, dict[str, object]]:
        status = 500 if told_to_fail("requests") else 200
        return status, {"app": "audit_x stand-in", "release": os.environ["APP_RELEASE"], "role": "web"}

    def route(self, path: str) -> tuple[int, dict[str, object]]:
        routes: dict[str, Callable[[], tuple[int, dict[str, object]]]] = {
            "/": self.root,
            "/live": self.live,
            "/ready": self.ready,
            "/health": self.health,
            "/stand-in/connections": lambda: (200, self.monitor.snapshot()),
            "/stand-in/environment": lambda: (200, dict(shown_environment())),
        }
        answer = routes.get(path)
        return answer() if answer else (404, {"error": "not found"})


def handler_for(app: WebApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # one JSON line per request instead (below)

        def do_GET(self) -> None:
            started = time.monotonic()
            incoming = self.headers.get("X-Request-Id", "")
            request_id = incoming if REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
            path = self.path.split("?", 1)[0]
            status, body = app.route(path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Request-Id", request_id)
            self.end_headers()
            self.wfile.write(data)
            log(
                "ERROR" if status >= 500 and path == "/" else "INFO",
                f"GET {path} {status}",
                request_id=request_id,
                method="GET",
                path=path,
                status=status,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )

    return Handler


def serve(monitor: ConnectionMonitor) -> int:
    port = int(os.environ["PORT"])
    app = WebApp(monitor)
    server = ThreadingHTTPServer(("0.0.0.0", port), handler_for(app))
    server.daemon_threads = True

    def stop(signum: int, _frame: object) -> None:
        log("INFO", f"shutting down on {signal.Signals(signum).name}")
        # shutdown() waits for serve_forever to return: not from the thread that runs it.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    monitor.start()
    app.booted = True
    log("INFO", "listening", port=port)
    server.serve_forever()
    server.server_close()
    monitor.stop()
    return 0
