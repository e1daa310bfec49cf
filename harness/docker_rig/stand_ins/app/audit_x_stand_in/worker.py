"""`bundle exec <worker>`: a worker role (Sidekiq, Karafka) as the contract sees it, a heartbeat.

While both connection checks pass, the worker touches $HEARTBEAT_FILE, at once on the first
success and then every 30 s (Sidekiq's thread in docs/app-contract.md does the same); when a check
fails it stops touching, so the program's health check (the file younger than a minute) fails
a minute later, as a worker that cannot reach Redis would.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from .connections import ConnectionMonitor
from .logs import log

HEARTBEAT_SECONDS = 30.0


def run(monitor: ConnectionMonitor, name: str) -> int:
    heartbeat = Path(os.environ["HEARTBEAT_FILE"])
    every = float(os.environ.get("STAND_IN_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
    stopped = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log("INFO", f"shutting down on {signal.Signals(signum).name}", worker=name)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    monitor.start()
    log("INFO", "worker started", worker=name, heartbeat_file=str(heartbeat))
    last_beat: float | None = None
    while not stopped.wait(0.1):
        if monitor.all_ok() and (last_beat is None or time.monotonic() - last_beat >= every):
            heartbeat.touch()
            last_beat = time.monotonic()
    monitor.stop()
    return 0
