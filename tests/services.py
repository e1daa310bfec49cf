"""Throwaway PostgreSQL and Redis servers on loopback, for tests that need the real thing.

Each server gets a free port on 127.0.0.1 and a temporary directory, and is stopped and removed
when its context ends. PostgreSQL runs as the `postgres` user when the tests run as root (initdb
refuses root). Nothing listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's binaries (Debian keeps them off PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("no PostgreSQL server found: install postgresql (`.ci/run` does)")


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresCluster:
    port: int
    datadir: Path
    bindir: Path
    superuser: str = "postgres"

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run SQL as the superuser over the cluster's socket (trust), return psql's output."""
        result = subprocess.run(
            _as_postgres_user(
                [
                    *(str(self.bindir / "psql"), "-h", str(self.datadir), "-p", str(self.port)),
                    *("-U", self.superuser, "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql),
                ]
            ),
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        subprocess.run(
            _as_postgres_user([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
            timeout=60,
        )


@contextlib.contextmanager
def postgres_cluster(server_flags: list[str] | None = None) -> Iterator[PostgresCluster]:
    """initdb, start on 127.0.0.1:<free port> with SCRAM for TCP, yield, then stop and delete.

    `server_flags` are `-c name=value` pairs as the program's postgres command gives them.
    """
    bindir = postgres_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="audit-x-pg-"))
    datadir = workdir / "data"
    datadir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(datadir, "postgres", "postgres")
    cluster = PostgresCluster(port=free_port(), datadir=datadir, bindir=bindir)
    subprocess.run(
        _as_postgres_user(
            [
                *(str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth-local=trust"),
                *("--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"),
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = " ".join(
        [f"-p {cluster.port}", f"-k {datadir}", "-c listen_addresses=127.0.0.1", "-c fsync=off"]
        + [f"-c {flag}" for flag in (server_flags or [])]
    )
    subprocess.run(
        _as_postgres_user(
            [
                *(str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options),
                *("-l", str(workdir / "server.log"), "-w", "-t", "60", "start"),
            ]
        ),
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def redis_server(config_file: Path) -> Iterator[RedisServer]:
    """Run redis-server with `config_file` (whose `port` line must name the port to wait for)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no redis-server found: install redis-server (`.ci/run` does)")
    port = next(int(line.split()[1]) for line in config_file.read_text().splitlines() if line.startswith("port "))
    process = subprocess.Popen([binary, str(config_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port=port, process=process)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode} before listening")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not listen within 30 s")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()
