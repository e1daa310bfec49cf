"""The declared Postgres and Redis probes, run for real against local servers.

The probe command is taken verbatim from what the program declares; only what differs between
a container and this machine is supplied from outside: the secret file's path (a temp file
instead of /run/secrets) and the port (PGPORT / REDIS_PORT, which the container leaves unset).
The Redis server runs the very redis.conf the program renders, and PostgreSQL the very
memory and SCRAM flags, so a typo there fails here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.local_services import PostgresCluster, free_port, postgres_cluster, redis_server
from harness.mock_engine import Plan
from tests.helpers import container, env, healthcheck_command, redis_config, run_probe, run_redis_password_job

pytestmark = pytest.mark.services

PASSWORD = "Correct0Horse1Battery2Staple3xxxxxxxxxxx"


@pytest.fixture(scope="module")
def staging(plans: dict[str, Plan]) -> Plan:
    return plans["staging"]


@pytest.fixture(scope="module")
def pg(staging: Plan) -> Iterator[PostgresCluster]:
    postgres = container(staging, "postgres")
    flags = postgres.inputs["command"][2::2]  # ["postgres", "-c", "a=b", "-c", ...] -> ["a=b", ...]
    # Each value as one word for pg_ctl's -o (archive_command has spaces). Its archiving fails here
    # (no repository), which does not stop the server: the flags are what is under test.
    quoted = [f"{name}='{value}'" for name, value in (flag.split("=", 1) for flag in flags)]
    with postgres_cluster(quoted) as cluster:
        variables = env(postgres)
        cluster.psql(f"CREATE ROLE {variables['POSTGRES_USER']} LOGIN PASSWORD '{PASSWORD}'")
        cluster.psql(f"CREATE DATABASE {variables['POSTGRES_DB']} OWNER {variables['POSTGRES_USER']}")
        yield cluster


def postgres_probe_env(plan: Plan, cluster: PostgresCluster, password_file: Path) -> dict[str, str]:
    variables = env(container(plan, "postgres"))
    return {
        "POSTGRES_USER": variables["POSTGRES_USER"],
        "POSTGRES_DB": variables["POSTGRES_DB"],
        "POSTGRES_PASSWORD_FILE": str(password_file),
        "PGPORT": str(cluster.port),
    }


def test_postgres_server_runs_with_the_declared_flags(pg: PostgresCluster, staging: Plan) -> None:
    assert pg.psql("SHOW password_encryption") == "scram-sha-256"
    assert pg.psql("SHOW shared_buffers") == "256MB"
    assert pg.psql("SHOW max_connections") == "50"
    assert pg.psql("SHOW archive_mode") == "on"
    assert pg.psql("SHOW archive_timeout") == "5min"  # staging's pitr.archiveTimeoutSeconds, 300
    assert pg.psql("SHOW archive_command").startswith("pgbackrest --config=/etc/pgbackrest/pgbackrest.conf ")


def test_postgres_probe_passes_with_the_right_password(pg: PostgresCluster, staging: Plan, tmp_path: Path) -> None:
    password_file = tmp_path / "postgres-password"
    password_file.write_text(PASSWORD)
    probe = healthcheck_command(container(staging, "postgres"))
    assert run_probe(probe, postgres_probe_env(staging, pg, password_file)) == 0


def test_postgres_probe_fails_with_a_wrong_password(pg: PostgresCluster, staging: Plan, tmp_path: Path) -> None:
    password_file = tmp_path / "postgres-password"
    password_file.write_text("not-the-password")
    probe = healthcheck_command(container(staging, "postgres"))
    assert run_probe(probe, postgres_probe_env(staging, pg, password_file)) != 0


def test_postgres_probe_fails_when_the_server_is_stopped(staging: Plan, tmp_path: Path) -> None:
    password_file = tmp_path / "postgres-password"
    password_file.write_text(PASSWORD)
    probe = healthcheck_command(container(staging, "postgres"))
    with postgres_cluster() as cluster:
        variables = env(container(staging, "postgres"))
        cluster.psql(f"CREATE ROLE {variables['POSTGRES_USER']} LOGIN PASSWORD '{PASSWORD}'")
        cluster.psql(f"CREATE DATABASE {variables['POSTGRES_DB']}")
        probe_env = postgres_probe_env(staging, cluster, password_file)
        assert run_probe(probe, probe_env) == 0
        cluster.stop()
        assert run_probe(probe, probe_env) != 0


def test_redis_probe_passes_with_the_right_password_and_fails_on_a_wrong_one(staging: Plan, tmp_path: Path) -> None:
    port = free_port()
    config_file = redis_config(staging, tmp_path, port)
    # No server yet: the password job writes the users file the first start reads.
    assert run_redis_password_job(staging, tmp_path, port, {"a": PASSWORD, "b": PASSWORD + "b"}).returncode == 0
    probe = healthcheck_command(container(staging, "redis"))
    with redis_server(config_file) as server:
        good = {"REDIS_USERS_FILE": str(tmp_path / "users.conf"), "REDIS_PORT": str(server.port)}
        assert run_probe(probe, good) == 0

        wrong_users = tmp_path / "wrong-users.conf"
        wrong_users.write_text("user default on >wrong-password ~* &* +@all\n")
        assert run_probe(probe, {"REDIS_USERS_FILE": str(wrong_users), "REDIS_PORT": str(server.port)}) != 0

        server.stop()
        assert run_probe(probe, good) != 0
    # The server really ran the rendered config: append-only persistence wrote its files.
    assert (tmp_path / "appendonlydir").is_dir()
