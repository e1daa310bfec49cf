"""The connection check: a fresh PostgreSQL and Redis login every 100 ms, counted.

Each attempt logs in anew with the password read from the secret file at that moment (not the
one the process started with) and the login, host and database of DATABASE_URL / REDIS_URL: a
rotation, a restart or a network cut shows up in the counts within a tenth of a second. One
thread per service, so a server that hangs does not delay the other's count; an attempt times
out after a second. The counts are since the process started, on the web role's
`/stand-in/connections` and, for every role, in a JSON file rewritten every second.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import postgres_wire, redis_resp
from .environment import endpoints_from_urls, read_password
from .logs import log

INTERVAL_SECONDS = 0.1
ATTEMPT_TIMEOUT_SECONDS = 1.0
STATE_FILE = "/tmp/audit-x-stand-in-connections.json"


@dataclass
class Tally:
    successes: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    last_ok: bool | None = None
    last_latency_ms: float | None = None


def check_postgres() -> None:
    url = endpoints_from_urls().postgres
    credentials = dataclasses.replace(url, password=read_password("postgres"))
    with postgres_wire.connect(credentials, ATTEMPT_TIMEOUT_SECONDS) as connection:
        rows = connection.query("SELECT 1")
    if rows != [("1",)]:
        raise postgres_wire.PostgresError(f"SELECT 1 returned {rows}")


def check_redis() -> None:
    url = endpoints_from_urls().redis
    credentials = dataclasses.replace(url, password=read_password("redis"))
    with redis_resp.connect(credentials, ATTEMPT_TIMEOUT_SECONDS) as connection:
        reply = connection.command("PING")
    if reply != "PONG":
        raise redis_resp.RedisError(f"PING returned {reply!r}")


CHECKS: dict[str, Callable[[], None]] = {"postgres": check_postgres, "redis": check_redis}


class ConnectionMonitor:
    def __init__(self, checks: dict[str, Callable[[], None]] | None = None) -> None:
        self.checks = checks or CHECKS
        self.tallies = {name: Tally() for name in self.checks}
        self.started_at = time.time()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.state_file = Path(os.environ.get("STAND_IN_CONNECTIONS_FILE", STATE_FILE))

    def start(self) -> None:
        for name, check in self.checks.items():
            threading.Thread(target=self._run, args=(name, check), name=f"check-{name}", daemon=True).start()
        threading.Thread(target=self._write_state, name="connections-file", daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()

    def all_ok(self) -> bool:
        with self.lock:
            return all(tally.last_ok for tally in self.tallies.values())

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "interval_ms": round(INTERVAL_SECONDS * 1000),
                "started_at": self.started_at,
                "now": time.time(),
                **{name: dataclasses.asdict(tally) for name, tally in self.tallies.items()},
            }

    def _run(self, name: str, check: Callable[[], None]) -> None:
        next_at = time.monotonic()
        while not self.stopped.is_set():
            started = time.monotonic()
            error: str | None = None
            try:
                check()
            except Exception as failure:  # noqa: BLE001 (every failure is counted, whatever its kind)
                error = f"{type(failure).__name__}: {failure}"
            self._record(name, error, (time.monotonic() - started) * 1000)
            next_at = max(next_at + INTERVAL_SECONDS, time.monotonic())
            self.stopped.wait(next_at - time.monotonic())

    def _record(self, name: str, error: str | None, latency_ms: float) -> None:
        with self.lock:
            tally = self.tallies[name]
            was_ok = tally.last_ok
            tally.last_ok = error is None
            tally.last_latency_ms = round(latency_ms, 1)
            if error is None:
                tally.successes += 1
                tally.last_success_at = time.time()
            else:
                tally.failures += 1
                tally.last_error = error
                tally.last_error_at = time.time()
        # Only the changes are logged: ten lines a second would drown the app's own.
        if was_ok is not False and error is not None:
            log("WARN", f"{name} connection check failing", service=name, error=error)
        elif was_ok is not True and error is None:
            log("INFO", f"{name} connection check passing", service=name)

    def _write_state(self) -> None:
        while not self.stopped.wait(1.0):
            temporary = self.state_file.with_name(self.state_file.name + ".new")
            temporary.write_text(json.dumps(self.snapshot()))
            temporary.replace(self.state_file)
