"""One backup run, whatever produces the bytes: stream a producer's stdout to S3, then record it.

    producer stdout --> parts --> S3 multipart upload (daily/)   abort on any failure
                         |
                       SHA-256 --> manifest (written last) --> copies to weekly/ monthly/

The manifest is written only after the object is complete and the producer exited 0, so a
backup with a manifest is a whole backup, and the runner needs no permission to delete.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from runner import layout
from runner.layout import BackupKey
from runner.retention import RetentionPolicy
from runner.storage import BackupStore, Lock

log = logging.getLogger("backup.jobs")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class BackupError(RuntimeError):
    """A run that failed: the message says what, for the log, the metric and the exit status."""


class StderrTail:
    """Keeps the last lines a child writes to stderr, without ever holding more than that."""

    def __init__(self, stream: IO[bytes], lines: int = 40) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._lines.append(raw.decode(errors="replace").rstrip())

    def text(self) -> str:
        self._thread.join(timeout=5)
        return "\n".join(self._lines)


# Linux lets a pipe hold up to /proc/sys/fs/pipe-max-size (1 MiB by default) instead of 64 KiB.
PIPE_BYTES = 1024 * 1024


def widen_pipe(stream: IO[bytes]) -> None:
    """Let the producer run ahead of the runner by up to a megabyte: with 64 KiB it stalls on
    every pause of the reader (a part handed to the uploader, a hash, a thread switch)."""
    try:
        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:
        log.debug("could not widen the producer's pipe; it keeps the default size")


def run_producer_to_s3(
    store: BackupStore,
    key: BackupKey,
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    lock: Lock | None,
    content_type: str = "application/octet-stream",
) -> tuple[int, str]:
    """Stream `command`'s stdout to `key.data`, locked by `lock`. Returns (size, sha256);
    raises BackupError."""
    log.info("streaming `%s` to s3://%s/%s", command[0], store.bucket, key.data)
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env))
    assert process.stdout is not None and process.stderr is not None
    widen_pipe(process.stdout)
    stderr = StderrTail(process.stderr)

    def producer_succeeded() -> None:
        code = process.wait()
        if code != 0:
            raise BackupError(f"{command[0]} exited with code {code}: {stderr.text() or 'no error output'}")

    try:
        result = store.upload_stream(
            key.data,
            process.stdout,
            content_type=content_type,
            before_complete=producer_succeeded,
            lock=lock,
        )
    except BackupError:
        raise
    except Exception as error:
        raise BackupError(f"upload to s3://{store.bucket}/{key.data} failed: {error}") from error
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    return result.size, result.sha256


def promote(store: BackupStore, key: BackupKey, now: datetime, retention: RetentionPolicy) -> list[str]:
    """Copy a complete backup to the weekly and monthly tiers when it is their period's first,
    each copy locked for its own tier's span."""

    def taken(tier: str) -> list[datetime]:
        prefix = layout.tier_prefix(tier, key.kind, key.name)
        return [layout.key_from_manifest(k, key.extension).taken_at for k in store.manifest_keys(prefix)]

    tiers = layout.promotions(now, taken("weekly"), taken("monthly"))
    for tier in tiers:
        target = key.in_tier(tier)
        lock = retention.lock(tier, key.taken_at)
        store.copy(key.data, target.data, lock=lock)
        store.copy(key.manifest, target.manifest, lock=lock)  # the manifest last, as for the daily copy
        log.info("copied the backup to %s", target.data)
    return tiers


def finish(
    store: BackupStore, key: BackupKey, manifest: dict[str, Any], clock: Clock, retention: RetentionPolicy
) -> dict[str, Any]:
    """Write the manifest, then make the weekly and monthly copies."""
    store.put_json(key.manifest, manifest, lock=retention.lock(key.tier, key.taken_at))
    manifest["copies"] = promote(store, key, key.taken_at, retention)
    log.info("backup complete: %s (%d bytes, sha256 %s)", key.data, manifest["size_bytes"], manifest["sha256"])
    manifest["finished_at"] = clock().isoformat()
    return manifest


def latest(
    store: BackupStore, kind: str, name: str, extension: str, *, on_or_before: datetime | None = None
) -> BackupKey | None:
    """The newest complete backup of `kind`/`name` in any tier (optionally not after a moment)."""
    candidates: list[BackupKey] = []
    for tier in layout.TIERS:
        for manifest_key in store.manifest_keys(layout.tier_prefix(tier, kind, name)):
            key = layout.key_from_manifest(manifest_key, extension)
            if on_or_before is None or key.taken_at <= on_or_before:
                candidates.append(key)
    # The same backup can be in three tiers; daily sorts first among equal stamps.
    candidates.sort(key=lambda k: (k.stamp, -layout.TIERS.index(k.tier)))
    return candidates[-1] if candidates else None


def parse_cutoff(text: str) -> datetime:
    """`2026-11-20` means the end of that day, UTC; a timestamp without a zone is UTC too."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BackupError(f"{text!r}: expected a date (2026-11-20), a timestamp or a backup key") from None
    if len(text) == 10:
        moment = moment.replace(hour=23, minute=59, second=59)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def choose_backup(store: BackupStore, kind: str, name: str, extension: str, key_or_date: str | None) -> BackupKey:
    """The backup a command names: the latest, a key, or the newest on or before a date."""
    if key_or_date and "/" in key_or_date:
        tier, key_kind, key_name, filename = key_or_date.split("/", 3)
        return BackupKey(tier, key_kind, key_name, filename.split(".", 1)[0], extension)
    cutoff = parse_cutoff(key_or_date) if key_or_date else None
    found = latest(store, kind, name, extension, on_or_before=cutoff)
    if found is None:
        when = f" on or before {key_or_date}" if key_or_date else ""
        raise BackupError(f"no complete {kind} backup of {name}{when} in s3://{store.bucket}")
    return found


def checksum_mismatch(key: BackupKey, expected: str, found: str, consequence: str) -> BackupError:
    return BackupError(
        f"checksum mismatch for {key.data}: manifest says {expected}, object hashes to {found}; {consequence}"
    )
