"""The runner's local record of its last successes, read by the container's health check.

The health check runs every 30 s and must not call S3 each time, so every successful run also
writes its time here (on the runner's volume). `status` reads the bucket itself, which is the
authority; `serve` reseeds this file from the bucket when it starts.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


def _path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read(state_dir: Path) -> dict[str, Any]:
    try:
        return json.loads(_path(state_dir).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def record_success(state_dir: Path, kind: str, at: datetime, details: dict[str, Any]) -> None:
    state = read(state_dir)
    state[kind] = {"last_success": at.astimezone(UTC).isoformat(), **details}
    _write(state_dir, state)


def forget(state_dir: Path, kind: str) -> None:
    """No success of `kind` holds any more (staging back on data that is no seed)."""
    state = read(state_dir)
    if state.pop(kind, None) is not None:
        _write(state_dir, state)


def _write(state_dir: Path, state: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    # Written to a temp file and renamed: the health check never reads half a file.
    with tempfile.NamedTemporaryFile("w", dir=state_dir, delete=False, suffix=".tmp") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
        temp_name = handle.name
    os.replace(temp_name, _path(state_dir))


def last_success(state_dir: Path, kind: str) -> datetime | None:
    entry = read(state_dir).get(kind)
    if not entry:
        return None
    return datetime.fromisoformat(entry["last_success"])
