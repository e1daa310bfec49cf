"""InfluxDB 2: a full backup with the operator token, archived and streamed to S3.

`influx backup` can only write to a directory, so the backup lands on the runner's volume first
(metrics are small next to the database), is archived with tar and gzip straight into the same
streamed multipart upload as a PostgreSQL dump, and the directory is removed whatever happens.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from runner.config import RunnerConfig
from runner.jobs import BackupError, Clock, finish, run_producer_to_s3
from runner.layout import BackupKey, stamp
from runner.storage import BackupStore

log = logging.getLogger("backup.influxdb")

KIND = "influxdb"
EXTENSION = "tar.gz"


def backup_name(config: RunnerConfig) -> str:
    return config.influx_org or "influxdb"


def backup(config: RunnerConfig, store: BackupStore, clock: Clock, *, reason: str) -> dict[str, Any]:
    if not (config.influx_url and config.influx_token):
        raise BackupError("INFLUX_URL and INFLUX_TOKEN_FILE are needed to back up InfluxDB")
    started = clock()
    name = backup_name(config)
    key = BackupKey("daily", KIND, name, stamp(started), EXTENSION)
    workdir = Path(
        tempfile.mkdtemp(prefix="influx-backup-", dir=config.state_dir if config.state_dir.exists() else None)
    )
    try:
        env = {"INFLUX_HOST": config.influx_url, "INFLUX_TOKEN": config.influx_token, "PATH": _path()}
        result = subprocess.run(
            ["influx", "backup", str(workdir / "backup")],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if result.returncode != 0:
            raise BackupError(f"influx backup exited with code {result.returncode}: {result.stderr.strip()}")
        files = sorted(p.name for p in (workdir / "backup").iterdir())
        size, sha256 = run_producer_to_s3(
            store,
            key,
            ["tar", "-C", str(workdir / "backup"), "-czf", "-", "."],
            {"PATH": _path()},
            lock=config.retention.lock(key.tier, key.taken_at),
            content_type="application/gzip",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    manifest: dict[str, Any] = {
        "kind": KIND,
        "org": name,
        "environment": config.environment,
        "format": "influx backup, tar.gz",
        "key": key.data,
        "files": files,
        "size_bytes": size,
        "sha256": sha256,
        "started_at": started.isoformat(),
        "ended_at": clock().isoformat(),
        "reason": reason,
    }
    return finish(store, key, manifest, clock, config.retention)


def _path() -> str:
    return os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
