"""The app stand-in (harness/docker_rig/stand_ins/app/), run on this machine against a real
PostgreSQL, a real Redis and the Redpanda stand-in's Kafka API, behind the real launcher.

Each role is started as the program starts it: the staging plan's entrypoint (the launcher,
components/app_launcher.sh, then the image's /rails/bin/docker-entrypoint) and command, with the
role's declared environment. Only what differs between a container and this machine is mapped:
/rails is the stand-in's directory, the secret files are in a temporary directory, and the
servers' host names and ports are loopback's.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.docker_rig.stand_ins.redpanda.kafka_api import KafkaServer
from harness.local_services import PostgresCluster, free_port, postgres_cluster, redis_server
from harness.mock_engine import REPO_ROOT, Plan
from tests.helpers import container, env, healthcheck_command, redis_config, run_probe, run_redis_password_job

pytestmark = pytest.mark.services

APP_DIR = REPO_ROOT / "harness" / "docker_rig" / "stand_ins" / "app"
LAUNCHER = REPO_ROOT / "components" / "app_launcher.sh"
IMAGE_PATHS = {"/run/audit-x/launch": str(LAUNCHER), "/rails/": f"{APP_DIR}/"}
DATABASE_PASSWORD = "Login0Password1Axxxxxxxxxxxxxxxxxxxxxxx"
REDIS_PASSWORD = "Redis0Password1Axxxxxxxxxxxxxxxxxxxxxxx"
REDIS_PASSWORD_B = "Redis0Password1Bxxxxxxxxxxxxxxxxxxxxxxx"
SECRET_KEY_BASE = "k" * 128
IMAGE_MIGRATIONS = ["20260101000001", "20260201000001"]


@dataclass
class Services:
    postgres: PostgresCluster
    redis_port: int
    kafka: KafkaServer


@pytest.fixture(scope="module")
def staging(plans: dict[str, Plan]) -> Plan:
    return plans["staging"]


@pytest.fixture(scope="module")
def services(staging: Plan, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    redis_dir = tmp_path_factory.mktemp("redis")
    port = free_port()
    config_file = redis_config(staging, redis_dir, port)
    assert (
        run_redis_password_job(staging, redis_dir, port, {"a": REDIS_PASSWORD, "b": REDIS_PASSWORD_B}).returncode == 0
    )
    kafka = KafkaServer(("127.0.0.1", 0))
    threading.Thread(target=kafka.serve_forever, daemon=True).start()
    owner = owner_role(staging)
    with postgres_cluster() as cluster, redis_server(config_file):
        # The owner and its login as the program's logins job leaves them (components/data/postgres.py).
        cluster.psql(f"CREATE ROLE {owner} NOLOGIN")
        cluster.psql(f"CREATE ROLE audit_x_a LOGIN PASSWORD '{DATABASE_PASSWORD}' IN ROLE {owner}")
        cluster.psql(f"ALTER ROLE audit_x_a SET role = '{owner}'")
        yield Services(cluster, port, kafka)
    kafka.shutdown()
    kafka.server_close()


def owner_role(staging: Plan) -> str:
    """The role that owns the app's database and what the app creates (the logins job's OWNER_ROLE)."""
    return env(container(staging, "postgres-logins"))["OWNER_ROLE"]


@dataclass
class Role:
    """One role of the stand-in, started as the plan declares it, with its files mapped here."""

    process: subprocess.Popen[str]
    environment: dict[str, str]
    files: Path
    output: list[str] = field(default_factory=list)

    def secret(self, name: str) -> Path:
        return Path(self.environment[f"{name}_FILE"])

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, dict[str, str]]:
        connection = http.client.HTTPConnection("127.0.0.1", int(self.environment["PORT"]), timeout=10)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read()), dict(response.getheaders())
        finally:
            connection.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        self.output.extend(out.splitlines())
        return self.process.returncode

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.output if line.startswith("{")]


def in_image(path: str) -> str:
    for image_path, here in IMAGE_PATHS.items():
        if path.startswith(image_path):
            return here + path[len(image_path) :]
    return path


def new_database(services: Services, staging: Plan) -> str:
    """A database of the test's own, owned by the owner role (as the postgres image creates it)."""
    name = f"{env(container(staging, 'postgres'))['POSTGRES_DB']}_{uuid.uuid4().hex[:8]}"
    services.postgres.psql(f"CREATE DATABASE {name} OWNER {owner_role(staging)}")
    return name


def role_environment(
    staging: Plan, parts: tuple[str, ...], services: Services, database: str, files: Path, *, secrets: dict[str, str]
) -> dict[str, str]:
    """The role's declared environment, with its secrets as files here and the servers on loopback."""
    declared = env(container(staging, *parts), plain=True)
    secrets_dir = files / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "DATABASE_PASSWORD": DATABASE_PASSWORD,
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "INFLUXDB_TOKEN": "influxdb-operator-token-value",
        "SECRET_KEY_BASE": SECRET_KEY_BASE,
        **secrets,
    }
    mapped = dict(declared)
    for name in declared["AUDIT_X_SECRETS"].split():
        path = secrets_dir / Path(declared[f"{name}_FILE"]).name
        path.write_text(values[name])
        path.chmod(0o400)
        mapped[f"{name}_FILE"] = str(path)
    assert declared["DATABASE_URL"] == f"postgres://audit_x_a@postgres:5432/{database.rsplit('_', 1)[0]}"
    assert declared["REDIS_URL"] == "redis://redis:6379/0"
    assert declared["KAFKA_BROKERS"] == "redpanda:9092"
    mapped["DATABASE_URL"] = f"postgres://audit_x_a@127.0.0.1:{services.postgres.port}/{database}"
    mapped["REDIS_URL"] = f"redis://127.0.0.1:{services.redis_port}/0"
    mapped["KAFKA_BROKERS"] = f"127.0.0.1:{services.kafka.server_address[1]}"
    if "PORT" in declared:
        mapped["PORT"] = str(free_port())
    if "HEARTBEAT_FILE" in declared:
        mapped["HEARTBEAT_FILE"] = str(files / "heartbeat")
    mapped["STAND_IN_CONNECTIONS_FILE"] = str(files / "connections.json")
    mapped["PATH"] = f"{APP_DIR / 'bin'}:{os.environ['PATH']}"
    return mapped


def start(
    staging: Plan,
    parts: tuple[str, ...],
    services: Services,
    database: str,
    files: Path,
    *,
    secrets: dict[str, str] | None = None,
    **overrides: str | None,
) -> Role:
    """Start a role: `secrets` replaces the content of secret files, `overrides` variables (None drops one)."""
    declared = container(staging, *parts)
    environment = role_environment(staging, parts, services, database, files, secrets=secrets or {})
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    entrypoint = [in_image(part) for part in declared.inputs["entrypoints"]]
    command = declared.inputs["command"]
    process = subprocess.Popen(
        ["sh", *entrypoint, *command],
        cwd=APP_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Role(process, environment, files)


def run_to_end(role: Role) -> int:
    out, _ = role.process.communicate(timeout=60)
    role.output.extend(out.splitlines())
    return role.process.returncode


def migrate(
    staging: Plan,
    services: Services,
    database: str,
    files: Path,
    *,
    secrets: dict[str, str] | None = None,
    **overrides: str | None,
) -> Role:
    role = start(staging, ("migrate",), services, database, files, secrets=secrets, **overrides)
    run_to_end(role)
    return role


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s")
        time.sleep(0.05)


@contextlib.contextmanager
def web(staging: Plan, services: Services, database: str, files: Path, **overrides: str | None) -> Iterator[Role]:
    role = start(staging, ("web", "0"), services, database, files, secrets=None, **overrides)

    def live() -> bool:
        assert role.process.poll() is None, role.process.communicate()[0]
        with contextlib.suppress(OSError):
            return role.get("/live")[0] == 200
        return False

    def checks_ran() -> bool:
        counts = role.get("/stand-in/connections")[1]
        return all(counts[service]["last_ok"] is not None for service in ("postgres", "redis"))

    try:
        wait_until(live, what="/live answering 200")
        # /ready counts the connection checks' last attempts: wait for the first of each.
        wait_until(checks_ran, what="a first connection check of each service")
        yield role
    finally:
        role.stop()


@pytest.fixture
def database(services: Services, staging: Plan) -> str:
    return new_database(services, staging)


def test_migration_applies_the_images_migrations_as_the_owner(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    role = migrate(staging, services, database, tmp_path)
    assert role.process.returncode == 0, role.output
    applied = services.postgres.psql(
        "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations", database=database
    )
    assert applied.split(",") == IMAGE_MIGRATIONS
    # The login acts as the owner role (ALTER ROLE ... SET role), so the owner owns the table.
    assert services.postgres.psql(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'", database=database
    ) == owner_role(staging)
    # A second run finds nothing to do and succeeds.
    assert migrate(staging, services, database, tmp_path).process.returncode == 0


def test_a_migration_told_to_fail_exits_1_and_changes_nothing(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    role = migrate(staging, services, database, tmp_path, STAND_IN_FAIL="migration")
    assert role.process.returncode == 1
    [failure] = [line for line in role.log_lines() if line["level"] == "ERROR"]
    assert "told to fail" in failure["error"]
    assert services.postgres.psql("SELECT count(*) FROM schema_migrations", database=database) == "0"
    assert services.postgres.psql("SELECT to_regclass('audit_events') IS NULL", database=database) == "t"


def test_web_serves_live_ready_and_health_once_migrated(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    with web(staging, services, database, tmp_path) as role:
        assert role.get("/live")[:2] == (200, {"live": True})
        status, body, _ = role.get("/ready")
        assert (status, body["reasons"]) == (503, [f"migrations pending: {', '.join(IMAGE_MIGRATIONS)}"])
        assert migrate(staging, services, database, tmp_path / "migrate").process.returncode == 0
        status, body, _ = role.get("/ready")
        assert (status, body) == (200, {"ready": True, "reasons": []})
        status, health, _ = role.get("/health")
        assert status == 200
        assert {name: check["status"] for name, check in health.items()} == {
            "postgres": "ok",
            "redis": "ok",
            "kafka": "ok",
        }
        assert all(isinstance(check["latency_ms"], float) for check in health.values())


def test_health_is_503_naming_the_dependency_that_fails(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    nothing_there = f"127.0.0.1:{free_port()}"
    with web(staging, services, database, tmp_path, KAFKA_BROKERS=nothing_there) as role:
        status, health, _ = role.get("/health")
        assert status == 503
        assert {name: check["status"] for name, check in health.items()} == {
            "postgres": "ok",
            "redis": "ok",
            "kafka": "error",
        }


def test_the_connection_check_counts_ten_logins_a_second(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    with web(staging, services, database, tmp_path) as role:
        first = role.get("/stand-in/connections")[1]
        time.sleep(2.0)
        second = role.get("/stand-in/connections")[1]
    elapsed = second["now"] - first["now"]
    for service in ("postgres", "redis"):
        gained = second[service]["successes"] - first[service]["successes"]
        # Every 100 ms: 10 a second; at least 4 on a two-core machine loaded by a parallel test run.
        assert 4 * elapsed <= gained <= 11 * elapsed, (service, gained, elapsed)
        assert second[service]["failures"] == 0
        assert second[service]["last_error"] is None


def test_a_wrong_password_in_the_file_is_counted_as_a_failure(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    with web(staging, services, database, tmp_path) as role:
        assert migrate(staging, services, database, tmp_path / "migrate").process.returncode == 0
        wait_until(lambda: role.get("/ready")[0] == 200, what="/ready 200")
        for name in ("DATABASE_PASSWORD", "REDIS_PASSWORD"):
            role.secret(name).chmod(0o600)
            role.secret(name).write_text("not-the-password")

        def both_failing() -> bool:
            counts = role.get("/stand-in/connections")[1]
            return counts["postgres"]["last_ok"] is False and counts["redis"]["last_ok"] is False

        # An attempt in flight may have read the right password just before the change: from the
        # first refusal on, every attempt reads the wrong one.
        wait_until(both_failing, what="both checks refused")
        before = role.get("/stand-in/connections")[1]
        time.sleep(1.5)
        after = role.get("/stand-in/connections")[1]
        status, body, _ = role.get("/ready")
        # /health uses the URLs the launcher completed at start: the process's own pools are fine.
        assert role.get("/health")[0] == 200
    for service, refusal in (("postgres", "28P01: password authentication failed"), ("redis", "WRONGPASS")):
        assert after[service]["failures"] - before[service]["failures"] >= 6, service  # 10 a second
        assert after[service]["successes"] == before[service]["successes"], service
        assert refusal in after[service]["last_error"]
        assert "not-the-password" not in json.dumps(after)
    assert (status, body["reasons"]) == (503, ["a connection check is failing"])
    # The change was logged as a warning naming the service (once per change, not per attempt).
    warnings = [line for line in role.log_lines() if line["level"] == "WARN"]
    assert {line["service"] for line in warnings} == {"postgres", "redis"}
    assert len(warnings) <= 4


def test_every_request_is_a_json_line_with_its_request_id(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    with web(staging, services, database, tmp_path) as role:
        status, _, headers = role.get("/live", {"X-Request-Id": "req-4711-abc"})
        assert (status, headers["X-Request-Id"]) == (200, "req-4711-abc")
        _, _, generated = role.get("/live")
    assert role.process.returncode == 0  # SIGTERM: a clean stop, the exit code the container's
    lines = role.log_lines()
    assert len(lines) == len(role.output), [line for line in role.output if not line.startswith("{")]
    mine = [line for line in lines if line["request_id"] == "req-4711-abc"]
    assert [(line["level"], line["message"], line["status"]) for line in mine] == [("INFO", "GET /live 200", 200)]
    assert {"timestamp", "level", "message", "request_id"} <= mine[0].keys()
    assert any(line["request_id"] == generated["X-Request-Id"] for line in lines)
    assert uuid.UUID(generated["X-Request-Id"])


def test_the_process_sees_the_contracts_variables_secrets_masked(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    with web(staging, services, database, tmp_path) as role:
        shown = role.get("/stand-in/environment")[1]
    assert shown["DATABASE_URL"] == f"postgres://audit_x_a:[secret]@127.0.0.1:{services.postgres.port}/{database}"
    assert shown["REDIS_URL"] == f"redis://:[secret]@127.0.0.1:{services.redis_port}/0"
    assert shown["SECRET_KEY_BASE"] == "[secret: 128 characters]"
    assert (shown["APP_ROLE"], shown["APP_RELEASE"], shown["AUDIT_X_ENVIRONMENT"]) == ("web", "1.4.2", "staging")
    assert (shown["LOG_FORMAT"], shown["RAILS_LOG_TO_STDOUT"]) == ("json", "true")
    assert DATABASE_PASSWORD not in json.dumps(shown) and REDIS_PASSWORD not in json.dumps(shown)


def test_a_variable_the_contract_promises_missing_stops_the_role(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    role = start(staging, ("web", "0"), services, database, tmp_path, KAFKA_BROKERS=None)
    assert run_to_end(role) == 78
    [fatal] = role.log_lines()
    assert fatal["level"] == "FATAL" and "KAFKA_BROKERS" in fatal["message"]


def test_a_missing_secret_file_stops_the_launcher_before_the_app(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    role = start(staging, ("web", "0"), services, database, tmp_path, REDIS_PASSWORD_FILE=str(tmp_path / "nowhere"))
    assert run_to_end(role) == 78
    assert role.output == [
        f"audit-x launcher: {tmp_path / 'nowhere'} (for REDIS_PASSWORD) is missing or not readable; not starting"
    ]


@pytest.mark.parametrize("worker", ["sidekiq", "karafka"])
def test_a_worker_keeps_its_heartbeat_while_its_checks_pass(
    staging: Plan, services: Services, database: str, tmp_path: Path, worker: str
) -> None:
    parts = ("worker", worker, "0")
    probe = healthcheck_command(container(staging, *parts))
    role = start(staging, parts, services, database, tmp_path)
    try:
        heartbeat = Path(role.environment["HEARTBEAT_FILE"])
        mapped_probe = probe.replace("/tmp/audit-x-heartbeat", str(heartbeat))
        assert mapped_probe != probe
        assert run_probe(mapped_probe, {}) != 0  # no heartbeat yet
        wait_until(heartbeat.exists, what="the heartbeat file")
        assert run_probe(mapped_probe, {}) == 0
        # The counts of a worker are in its file (no HTTP port): read as `docker exec` would.
        wait_until(lambda: Path(role.environment["STAND_IN_CONNECTIONS_FILE"]).exists(), what="the counts file")
        counts = json.loads(Path(role.environment["STAND_IN_CONNECTIONS_FILE"]).read_text())
        assert counts["redis"]["successes"] > 0 and counts["postgres"]["successes"] > 0
    finally:
        assert role.stop() == 0


def test_a_worker_with_a_wrong_password_never_beats(
    staging: Plan, services: Services, database: str, tmp_path: Path
) -> None:
    role = start(
        staging,
        ("worker", "sidekiq", "0"),
        services,
        database,
        tmp_path,
        secrets={"REDIS_PASSWORD": "not-the-password"},
    )
    heartbeat = Path(role.environment["HEARTBEAT_FILE"])
    counts_file = Path(role.environment["STAND_IN_CONNECTIONS_FILE"])
    try:
        wait_until(counts_file.exists, what="the counts file")
        wait_until(lambda: json.loads(counts_file.read_text())["redis"]["failures"] >= 10, what="10 failures")
        assert not heartbeat.exists()
    finally:
        role.stop()


@pytest.mark.parametrize("method", ["md5", "password"])
def test_the_migration_logs_in_with_the_other_password_methods(staging: Plan, tmp_path: Path, method: str) -> None:
    """SCRAM-SHA-256 is what the program's server asks for (the tests above); md5 and a clear-text
    password are what an older server or pg_hba line would ask, and the client speaks them too."""
    owner = owner_role(staging)
    with postgres_cluster() as cluster:
        hba = cluster.datadir / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("scram-sha-256", method))
        cluster.psql("SELECT pg_reload_conf()")
        cluster.psql(f"CREATE ROLE {owner} NOLOGIN")
        cluster.psql(
            "SET password_encryption = 'md5'; " * (method == "md5")
            + f"CREATE ROLE audit_x_a LOGIN PASSWORD '{DATABASE_PASSWORD}' IN ROLE {owner}"
        )
        kafka = KafkaServer(("127.0.0.1", 0))
        services = Services(cluster, free_port(), kafka)
        database = new_database(services, staging)
        role = migrate(staging, services, database, tmp_path)
        kafka.server_close()
        assert role.process.returncode == 0, role.output
        wrong = migrate(staging, services, database, tmp_path / "wrong", secrets={"DATABASE_PASSWORD": "wrong"})
        assert wrong.process.returncode == 1
        assert "28P01" in next(line["error"] for line in wrong.log_lines() if line["level"] == "ERROR")
