"""JSON log lines on stdout, one object a line, as docs/app-contract.md asks of the app."""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import UTC, datetime

LEVELS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40, "FATAL": 50}
_lock = threading.Lock()


def _threshold() -> int:
    return LEVELS.get(os.environ.get("RAILS_LOG_LEVEL", "info").upper(), LEVELS["INFO"])


def log(level: str, message: str, *, request_id: str | None = None, **fields: object) -> None:
    """Write one line: timestamp, level, message and request_id first, then the fields given."""
    if LEVELS[level] < _threshold():
        return
    line = {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "message": message,
        "request_id": request_id,
        "role": os.environ.get("APP_ROLE"),
        "release": os.environ.get("APP_RELEASE"),
        **fields,
    }
    with _lock:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
