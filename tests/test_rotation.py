"""Rotation takes effect: a new marker gives a new value, the running services accept it, the old
value is refused, and the data written before is still there.

The PostgreSQL password job's script is taken verbatim from the plan and run against a throwaway
server (its socket directory stands in for the shared socket volume). Redis is restarted with the
rendered config and a new auth file, as its container replacement does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from components.app import release_suffix
from components.platform.secrets import GENERATED_SECRETS
from components.settings import GENERATED_SECRET_NAMES, ROTATABLE_SECRETS, ConfigError, load_settings
from tests.helpers import container, env, redis_files, run_probe
from tools.local_services import free_port, postgres_bindir, postgres_cluster, redis_server
from tools.mock_engine import fake_secret, load_stack_config, run_program

OLD, NEW = "OldPassword0123456789abcdefghijklmnopqr", "NewPassword0123456789abcdefghijklmnopqr"


def rotated(stack: str, **markers: str) -> dict[str, str]:
    return load_stack_config(stack) | {"audit-x:rotation": json.dumps(markers)}


def test_generated_secrets_are_the_settings_names() -> None:
    assert [spec.name for spec in GENERATED_SECRETS] == list(GENERATED_SECRET_NAMES)
    assert set(ROTATABLE_SECRETS) == set(GENERATED_SECRET_NAMES) - {
        "influxdb-admin-password",
        "influxdb-operator-token",
    }


def test_rotation_markers_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"audit-x:rotation = .*cannot rotate sentry-dsn"):
        load_settings(rotated("staging", **{"sentry-dsn": "2026-11"}))
    with pytest.raises(
        ConfigError, match=r"cannot rotate influxdb-operator-token \(InfluxDB sets it only at first setup\)"
    ):
        load_settings(rotated("staging", **{"influxdb-operator-token": "2026-11"}))


def test_a_new_marker_replaces_the_password_and_reaches_every_consumer() -> None:
    before = run_program("staging")
    after = run_program("staging", config=rotated("staging", **{"postgres-password": "2026-11-28"}))
    keepers = {r.name: r.inputs["keepers"] for r in after.of_type("random:index/randomPassword:RandomPassword")}
    assert keepers["audit-x-staging-postgres-password"] == {"rotation": "2026-11-28"}
    assert keepers["audit-x-staging-redis-password"] == {"rotation": "initial"}
    old_password = fake_secret("audit-x-staging-postgres-password")
    password = fake_secret("audit-x-staging-postgres-password/2026-11-28")
    # The job that sets the password in the running server gets the new one, so it is replaced
    # and runs again ...
    assert container(before, "postgres-password").plain_inputs["uploads"][0]["content"] == old_password
    assert container(after, "postgres-password").plain_inputs["uploads"][0]["content"] == password
    # ... the app roles get new containers, created before the old ones are removed ...
    old_web, new_web = container(before, "web-0").inputs["name"], container(after, "web-0").inputs["name"]
    assert old_web != new_web
    settings = load_settings(rotated("staging", **{"postgres-password": "2026-11-28"}))
    assert new_web.endswith(release_suffix(settings.app.image, settings.rotation))
    # ... and every consumer gets the new value: app roles, backup runner, Secrets Manager.
    assert password in env(container(after, "web-0"), plain=True)["DATABASE_URL"]
    assert password in env(container(after, "worker-sidekiq-0"), plain=True)["DATABASE_URL"]
    runner_files = {u["file"]: u["content"] for u in container(after, "backup").plain_inputs["uploads"]}
    assert runner_files["/run/secrets/postgres-password"] == password
    version = after.named("audit-x-staging-secret-postgres-password-version")
    assert version.plain_inputs["secretString"] == password
    # PostgreSQL itself is not restarted: nothing of its container changes.
    assert container(after, "postgres").inputs == container(before, "postgres").inputs


@pytest.mark.services
def test_postgres_password_job_changes_the_password_in_the_running_server(tmp_path: Path) -> None:
    plan = run_program("staging")
    job = container(plan, "postgres-password")
    script = job.inputs["command"][2]
    with postgres_cluster() as pg, pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{postgres_bindir()}:{os.environ['PATH']}")
        pg.psql(f"CREATE ROLE audit_x LOGIN SUPERUSER PASSWORD '{OLD}'")
        pg.psql("CREATE DATABASE audit_x_staging OWNER audit_x")
        dsn = f"host=127.0.0.1 port={pg.port} user=audit_x dbname=audit_x_staging"
        with psycopg.connect(dsn, password=OLD, autocommit=True) as connection:
            connection.execute("CREATE TABLE audit_events (id int primary key, action text)")
            connection.execute("INSERT INTO audit_events SELECT n, 'login' FROM generate_series(1, 500) n")

        (tmp_path / "new-password").write_text(NEW)
        job_env = {
            **{k: v for k, v in env(job).items() if k in ("POSTGRES_USER", "POSTGRES_UID")},
            "PATH": os.environ["PATH"],
            "PGDATA": str(pg.datadir / ""),  # initialised: PG_VERSION is there
            "PGHOST": str(pg.datadir),  # the cluster's socket directory, as the shared volume
            "PGPORT": str(pg.port),
            "NEW_PASSWORD_FILE": str(tmp_path / "new-password"),
            "PASSWORD_FILE": str(tmp_path / "postgres-password"),
        }
        result = subprocess.run(
            ["sh", "-c", script], env=job_env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "password of role audit_x changed in the running server" in result.stdout
        assert (tmp_path / "postgres-password").read_text() == NEW
        assert NEW not in result.stdout + result.stderr

        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn, password=OLD).close()
        with psycopg.connect(dsn, password=NEW) as connection:
            assert connection.execute("SELECT count(*) FROM audit_events").fetchone() == (500,)

        # The health check now passes with the file the job wrote, as the server's does.
        probe = container(plan, "postgres").inputs["healthcheck"]["tests"][1]
        probe_env = {"POSTGRES_USER": "audit_x", "POSTGRES_DB": "audit_x_staging", "PGPORT": str(pg.port)}
        assert run_probe(probe, probe_env | {"POSTGRES_PASSWORD_FILE": str(tmp_path / "postgres-password")}) == 0

        # A server that does not answer: the job fails and changes nothing.
        pg.stop()
        (tmp_path / "new-password").write_text("YetAnotherPassword0123456789abcdefghijk")
        result = subprocess.run(
            ["sh", "-c", script], env=job_env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 1
        assert "password not changed" in result.stderr
        assert (tmp_path / "postgres-password").read_text() == NEW


@pytest.mark.services
def test_postgres_password_job_on_first_deploy_only_writes_the_file(tmp_path: Path) -> None:
    script = container(run_program("staging"), "postgres-password").inputs["command"][2]
    (tmp_path / "new-password").write_text(NEW)
    (tmp_path / "pgdata").mkdir()
    job_env = {
        "PATH": os.environ["PATH"],
        "POSTGRES_USER": "audit_x",
        "POSTGRES_UID": str(os.getuid()),
        "PGDATA": str(tmp_path / "pgdata"),  # empty: the server initialises later, from the file
        "PGHOST": str(tmp_path / "no-socket-yet"),
        "NEW_PASSWORD_FILE": str(tmp_path / "new-password"),
        "PASSWORD_FILE": str(tmp_path / "postgres-password"),
    }
    result = subprocess.run(["sh", "-c", script], env=job_env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "postgres-password").read_text() == NEW
    assert oct((tmp_path / "postgres-password").stat().st_mode & 0o777) == "0o600"


@pytest.mark.services
def test_redis_restarted_with_a_new_password_refuses_the_old_and_keeps_its_data(tmp_path: Path) -> None:
    plan = run_program("staging")
    port = free_port()
    config_file, auth_file = redis_files(plan, tmp_path, OLD, port)
    probe = container(plan, "redis").inputs["healthcheck"]["tests"][1]
    cli = ["redis-cli", "-p", str(port), "--no-auth-warning"]
    with redis_server(config_file):
        for n in range(200):
            subprocess.run([*cli, "-a", OLD, "RPUSH", "queue:default", f"job-{n}"], check=True, capture_output=True)
    auth_file.write_text(f"requirepass {NEW}\n")  # what the replaced container gets
    with redis_server(config_file):
        probe_env = {"REDIS_AUTH_FILE": str(auth_file), "REDIS_PORT": str(port)}
        assert run_probe(probe, probe_env) == 0
        old = subprocess.run([*cli, "-a", OLD, "PING"], capture_output=True, text=True, check=False)
        assert "WRONGPASS" in old.stdout + old.stderr
        length = subprocess.run([*cli, "-a", NEW, "LLEN", "queue:default"], capture_output=True, text=True, check=True)
        assert length.stdout.strip() == "200"


def test_grafana_admin_password_is_reset_in_grafana_after_a_rotation() -> None:
    after = run_program("staging", config=rotated("staging", **{"grafana-admin-password": "2026-11-28"}))
    job = container(after, "grafana-admin-password")
    assert job.inputs["entrypoints"] == ["sh", "-c"]
    assert "admin reset-admin-password --password-from-stdin" in job.inputs["command"][0]
    assert container(after, "grafana").urn in job.dependencies
    files = {u["file"]: u["content"] for u in job.plain_inputs["uploads"]}
    assert files["/run/secrets/grafana-admin-password"] == fake_secret(
        "audit-x-staging-grafana-admin-password/2026-11-28"
    )
    mounts = {v["containerPath"]: v["volumeName"] for v in job.inputs["volumes"]}
    assert mounts == {"/var/lib/grafana": "audit-x-staging-grafana-data"}
