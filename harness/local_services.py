"""Throwaway servers on loopback for tests and benchmarks that need the real thing.

PostgreSQL, Redis, an S3 API (moto's server mode), a proxy in front of it that injects faults,
and a stand-in for InfluxDB's write API. Each gets a free port on 127.0.0.1 (and a temporary
directory where it needs one) and is stopped when its context ends. PostgreSQL runs as the
`postgres` user when run as root (initdb refuses root). Nothing listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


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


def run_logins_job(
    cluster: PostgresCluster, script: str, job_env: dict[str, str], passwords: dict[str, str], secrets_dir: Path
) -> subprocess.CompletedProcess[str]:
    """The PostgreSQL logins job (components/data/postgres_logins.sh) against `cluster`, as its
    container runs it: `job_env` as the plan gives it, each login's password in a file of
    `secrets_dir` named after it, the cluster's socket directory standing in for the shared
    socket volume. The bootstrap superuser the job logs in as (job_env's POSTGRES_USER) must exist."""
    for login, password in passwords.items():
        (secrets_dir / login).write_text(password)
    environment = job_env | {
        "PATH": f"{cluster.bindir}:{os.environ['PATH']}",
        "PGHOST": str(cluster.datadir),
        "PGPORT": str(cluster.port),
        "SECRETS_DIR": str(secrets_dir),
        "LOGINS": " ".join(passwords),
    }
    return subprocess.run(
        ["sh", "-c", script], env=environment, capture_output=True, text=True, timeout=60, check=False
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
        wait_for_port(port, process)
        yield server
    finally:
        server.stop()


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:g} s")
        time.sleep(0.05)


@contextlib.contextmanager
def s3_server_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """moto's S3 server in its own process, on loopback; yields its endpoint URL and the process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server (see s3_server_process); yields its endpoint URL."""
    with s3_server_process() as (endpoint, _):
        yield endpoint


@contextlib.contextmanager
def aws_api_server() -> Iterator[str]:
    """moto's server, which answers every AWS API it implements (Route 53, CloudWatch, SNS, KMS,
    IAM besides S3) on one loopback port; yields its endpoint URL."""
    with s3_server_process() as (endpoint, _):
        yield endpoint


@dataclass
class TlsTerminator:
    """nginx with a throwaway certificate in front of a plain-HTTP server (moto's), so that a
    client that speaks only TLS (pgBackRest's S3 client) reaches it. `stop()` and `start()`
    take the endpoint away and bring it back: S3 going down and returning."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["nginx", "-c", str(self.workdir / "nginx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@contextlib.contextmanager
def tls_terminator(upstream: str) -> Iterator[TlsTerminator]:
    """TLS on 127.0.0.1:<free port>, proxied to `upstream` (http://host:port); yields it running."""
    if shutil.which("nginx") is None:
        raise RuntimeError("nginx is not installed: apt-get install nginx-light (harness/system_packages.sh)")
    workdir = Path(tempfile.mkdtemp(prefix="audit-x-tls-"))
    terminator = TlsTerminator(port=free_port(), workdir=workdir)
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-keyout", str(workdir / "key.pem"), "-out", str(workdir / "cert.pem")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    temp = {name: workdir / name for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi")}
    (workdir / "nginx.conf").write_text(
        f"""daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    client_body_temp_path {temp["client"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    server {{
        listen 127.0.0.1:{terminator.port} ssl;
        ssl_certificate {workdir}/cert.pem;
        ssl_certificate_key {workdir}/key.pem;
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""
    )
    terminator.start()
    try:
        yield terminator
    finally:
        terminator.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class FaultPlan:
    """What the proxy does to requests: counts them, and fails the ones a rule picks."""

    fail_upload_parts_from: int | None = None  # every UploadPart with this part number or higher
    transient_part_failures: int = 0  # the next N UploadPart requests, then pass
    status: int = 500
    on_first_part: Callable[[], None] | None = None  # called once, before the first part goes on
    parts_seen: int = 0
    parts_failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, method: str, query: dict[str, list[str]]) -> int | None:
        """The status to fail this request with, or None to pass it on."""
        if method != "PUT" or "partNumber" not in query or "uploadId" not in query:
            return None
        with self.lock:
            self.parts_seen += 1
            hook, self.on_first_part = (
                (self.on_first_part, None) if self.parts_seen == 1 else (None, self.on_first_part)
            )
            if self.transient_part_failures > 0:
                self.transient_part_failures -= 1
                self.parts_failed += 1
                return 503
            if self.fail_upload_parts_from is not None and int(query["partNumber"][0]) >= self.fail_upload_parts_from:
                self.parts_failed += 1
                return self.status
        if hook:
            hook()
        return None


@contextlib.contextmanager
def faulty_s3_proxy(upstream: str, faults: FaultPlan) -> Iterator[str]:
    """An HTTP proxy to an S3 endpoint that fails requests as `faults` says; yields its URL."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            failure = faults.decide(self.command, parse_qs(urlsplit(self.path).query))
            if failure is not None:
                payload = b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>"
                self.send_response(failure)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=300)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = target.netloc
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            connection.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server's names)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class InfluxWrites:
    """What a stand-in InfluxDB received on /api/v2/write: the lines, and the queries."""

    url: str
    lines: list[str] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


@contextlib.contextmanager
def influx_write_recorder() -> Iterator[InfluxWrites]:
    """A stand-in for InfluxDB 2's write API that records line protocol; for tests only."""
    record = InfluxWrites(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            split = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if split.path != "/api/v2/write":
                self.send_response(404)
            else:
                record.lines.extend(line for line in body.splitlines() if line)
                record.queries.append(parse_qs(split.query))
                record.tokens.append(self.headers.get("Authorization", ""))
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
