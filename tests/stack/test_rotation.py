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

from components.lib import tokens
from components.platform.secrets import GENERATED_SECRETS
from components.settings import GENERATED_SECRET_NAMES, ROTATABLE_SECRETS, ConfigError, load_settings
from components.settings.secrets import active_slot, slot_generations
from harness.local_services import free_port, postgres_bindir, postgres_cluster, redis_server, run_logins_job
from harness.mock_engine import DeclaredResource, fake_secret, load_stack_config, run_program
from tests.helpers import container, env, redis_config, run_probe, run_redis_password_job

OLD, NEW = "OldPassword0123456789abcdefghijklmnopqr", "NewPassword0123456789abcdefghijklmnopqr"


def rotated(stack: str, **markers: str) -> dict[str, str]:
    return load_stack_config(stack) | {"audit-x:rotation": json.dumps(markers)}


def test_generated_secrets_are_the_settings_names() -> None:
    assert [spec.name for spec in GENERATED_SECRETS] == list(GENERATED_SECRET_NAMES)
    assert set(ROTATABLE_SECRETS) == set(GENERATED_SECRET_NAMES) - {
        "postgres-login-a",
        "postgres-login-b",
        "redis-password-b",
        "influxdb-admin-password",
        "influxdb-operator-token",
        "pgbackrest-cipher-pass",
    }


def test_rotation_markers_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"audit-x:rotation = .*cannot rotate sentry-dsn"):
        load_settings(rotated("staging", **{"sentry-dsn": "2026-11"}))
    with pytest.raises(
        ConfigError, match=r"cannot rotate influxdb-operator-token \(InfluxDB sets it only at first setup\)"
    ):
        load_settings(rotated("staging", **{"influxdb-operator-token": "2026-11"}))
    with pytest.raises(ConfigError, match=r"postgres-password = '2026-11-28': expected a generation number"):
        load_settings(rotated("staging", **{"postgres-password": "2026-11-28"}))


@pytest.mark.parametrize(
    ("generation", "active", "a", "b"), [(0, "a", 0, -1), (1, "b", 0, 1), (2, "a", 2, 1), (3, "b", 2, 3)]
)
def test_each_rotation_gives_the_new_password_to_the_login_not_in_use(
    generation: int, active: str, a: int, b: int
) -> None:
    assert active_slot(generation) == active
    assert slot_generations(generation) == {"a": a, "b": b}


def test_a_postgres_rotation_moves_consumers_to_the_other_login_and_leaves_the_one_in_use_alone() -> None:
    before = run_program("staging")
    after = run_program("staging", config=rotated("staging", **{"postgres-password": "1"}))
    keepers = {r.name: r.inputs["keepers"] for r in after.of_type(tokens.RANDOM_PASSWORD)}
    assert keepers["audit-x-staging-postgres-login-a"] == {"generation": "0"}  # in use until now: unchanged
    assert keepers["audit-x-staging-postgres-login-b"] == {"generation": "1"}  # not in use: new password
    login_a = fake_secret("audit-x-staging-postgres-login-a/0")
    login_b = fake_secret("audit-x-staging-postgres-login-b/1")
    assert env(container(before, "web-0"), plain=True)["DATABASE_URL"].startswith("postgres://audit_x_a@")
    assert uploaded_plain(container(before, "web-0"), "/run/secrets/database-password") == login_a
    # The logins job sets both passwords; the one consumers hold until they move over is unchanged.
    job_files = {u["file"]: u["content"] for u in container(after, "postgres-logins").plain_inputs["uploads"]}
    assert job_files == {"/run/secrets/audit_x_a": login_a, "/run/secrets/audit_x_b": login_b}
    for consumer in ("web-0", "worker-sidekiq-0", "migrate"):
        assert env(container(after, consumer), plain=True)["DATABASE_URL"].startswith("postgres://audit_x_b@")
        assert uploaded_plain(container(after, consumer), "/run/secrets/database-password") == login_b
    runner = container(after, "backup")
    assert env(runner, plain=True)["PGUSER"] == "audit_x_b"
    assert uploaded_plain(runner, "/run/secrets/postgres-password") == login_b
    assert after.plain_outputs["databaseLogin"] == "audit_x_b"
    # PostgreSQL itself is not touched: nothing of its container changes.
    assert container(after, "postgres").plain_inputs == container(before, "postgres").plain_inputs


def uploaded_plain(resource: DeclaredResource, path: str) -> str:
    return {u["file"]: u["content"] for u in resource.plain_inputs["uploads"]}[path]


@pytest.mark.services
def test_logins_job_keeps_the_login_in_use_working_while_the_other_gets_its_new_password(tmp_path: Path) -> None:
    plan = run_program("staging")
    job = container(plan, "postgres-logins")
    script = job.inputs["command"][0]
    first = {
        "audit_x_a": "LoginA0123456789abcdefghijklmnopqrstuvwx",
        "audit_x_b": "LoginB0123456789abcdefghijklmnopqrstuvwx",
    }
    with postgres_cluster() as pg:
        pg.psql(f"CREATE ROLE audit_x LOGIN SUPERUSER PASSWORD '{OLD}'")
        pg.psql("CREATE DATABASE audit_x_staging OWNER audit_x")

        def run_job(passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return run_logins_job(pg, script, env(job), passwords, tmp_path)

        def dsn(login: str) -> str:
            return f"host=127.0.0.1 port={pg.port} user={login} dbname=audit_x_staging"

        assert run_job(first).returncode == 0
        # Generation 0: the app uses login a; what it creates belongs to the owner role, no superuser.
        in_use = psycopg.connect(dsn("audit_x_a"), password=first["audit_x_a"], autocommit=True)
        in_use.execute("CREATE TABLE audit_events (id int primary key, action text)")
        in_use.execute("INSERT INTO audit_events SELECT n, 'login' FROM generate_series(1, 500) n")
        owner = pg.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'", database="audit_x_staging")
        assert owner.strip() == "audit_x_owner"

        # Generation 1: only b's password changes; the job runs while a is connected and in use.
        second = first | {"audit_x_b": "LoginB1NEW456789abcdefghijklmnopqrstuvwx"}
        result = run_job(second)
        assert result.returncode == 0, result.stderr
        assert not any(password in result.stdout + result.stderr for password in second.values())
        assert in_use.execute("SELECT count(*) FROM audit_events").fetchone() == (500,)
        psycopg.connect(dsn("audit_x_a"), password=first["audit_x_a"]).close()  # new connections too
        with psycopg.connect(dsn("audit_x_b"), password=second["audit_x_b"]) as moved:
            moved.execute("INSERT INTO audit_events VALUES (501, 'rotated')")
            moved.commit()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn("audit_x_b"), password=first["audit_x_b"]).close()
        in_use.close()


@pytest.mark.services
def test_postgres_password_job_changes_the_password_in_the_running_server(tmp_path: Path) -> None:
    plan = run_program("staging")
    job = container(plan, "postgres-password")
    script = job.inputs["command"][0]
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
    script = container(run_program("staging"), "postgres-password").inputs["command"][0]
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
def test_redis_rotation_changes_the_password_not_in_use_live_then_retires_the_old_one(tmp_path: Path) -> None:
    before = run_program("staging")
    after = run_program("staging", config=rotated("staging", **{"redis-password": "1"}))
    port = free_port()
    config_file = redis_config(after, tmp_path, port)
    password_b2 = "NewPasswordB123456789abcdefghijklmnopqr"
    cli = ["redis-cli", "-p", str(port), "--no-auth-warning"]

    def accepted(password: str) -> bool:
        reply = subprocess.run([*cli, "-a", password, "PING"], capture_output=True, text=True, check=False)
        return "PONG" in reply.stdout

    # Generation 0 deployed: both slots set, the app on a; its retire job left a alone.
    assert run_redis_password_job(before, tmp_path, port, {"a": OLD, "b": NEW}).returncode == 0
    with redis_server(config_file):
        assert run_redis_password_job(before, tmp_path, port, {"a": OLD}, "redis-password-retire").returncode == 0
        assert (accepted(OLD), accepted(NEW)) == (True, False)
        for n in range(200):
            subprocess.run([*cli, "-a", OLD, "RPUSH", "queue:default", f"job-{n}"], check=True, capture_output=True)
        # Generation 1: b gets a new value; the job runs against the running server, where the
        # app still holds a.
        result = run_redis_password_job(after, tmp_path, port, {"a": OLD, "b": password_b2})
        assert result.returncode == 0, result.stderr
        assert "passwords set in the running server: slots a b" in result.stdout
        assert (accepted(OLD), accepted(password_b2)) == (True, True)
        # The app's new containers connect with b, and one stays connected through the retire job.
        client = subprocess.Popen([*cli, "-a", password_b2], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        retire = run_redis_password_job(after, tmp_path, port, {"b": password_b2}, "redis-password-retire")
        assert retire.returncode == 0, retire.stderr
        assert "passwords set in the running server: slots b" in retire.stdout
        assert not any(p in result.stdout + result.stderr + retire.stdout + retire.stderr for p in (OLD, password_b2))
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write("LLEN queue:default\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "200"  # the open connection keeps working
        client.terminate()
        # One rotation: the old (leaked) password is refused from now on.
        assert (accepted(OLD), accepted(password_b2)) == (False, True)
        probe = container(after, "redis").inputs["healthcheck"]["tests"][1]
        assert run_probe(probe, {"REDIS_USERS_FILE": str(tmp_path / "users.conf"), "REDIS_PORT": str(port)}) == 0
    # A restart reads the active password alone from the users file, and the queue is still there.
    with redis_server(config_file):
        assert (accepted(OLD), accepted(password_b2)) == (False, True)
        length = subprocess.run(
            [*cli, "-a", password_b2, "LLEN", "queue:default"], capture_output=True, text=True, check=True
        )
        assert length.stdout.strip() == "200"


def test_redis_retire_job_runs_after_every_consumer_moved_and_only_when_the_slot_changes() -> None:
    before = run_program("staging")
    after = run_program("staging", config=rotated("staging", **{"redis-password": "1"}))
    for plan, slot in ((before, "a"), (after, "b")):
        job = container(plan, "redis-password-retire")
        files = [u["file"] for u in job.inputs["uploads"]]
        assert [f for f in files if "/password-" in f] == [f"/run/secrets/password-{slot}"]
        assert plan.plain_outputs["redisPasswordSlot"] == slot
        app = [
            r.urn
            for r in plan.of_type(tokens.CONTAINER)
            if tokens.labels_of(r.inputs).get(tokens.label("service")) == "app"
            and tokens.labels_of(r.inputs).get(tokens.label("lifecycle")) == "service"
        ]
        assert len(app) >= 3
        assert set(app) | {container(plan, "edge-routes").urn} <= set(job.dependencies)
    # Unchanged without a rotation; a new job (it runs again) after one.
    again = run_program("staging")
    assert (
        container(again, "redis-password-retire").inputs["name"]
        == container(before, "redis-password-retire").inputs["name"]
    )
    assert (
        container(after, "redis-password-retire").inputs["name"]
        != container(before, "redis-password-retire").inputs["name"]
    )


def test_grafana_admin_password_is_reset_in_grafana_after_a_rotation() -> None:
    before = run_program("staging")
    after = run_program("staging", config=rotated("staging", **{"grafana-admin-password": "2026-11-28"}))
    job = container(after, "grafana-admin-password")
    assert job.inputs["entrypoints"] == ["sh", "-c"]
    assert "admin reset-admin-password --password-from-stdin" in job.inputs["command"][0]
    # The job runs before the server (it writes the file a first start reads); the server waits
    # for it through depends_on alone, and nothing of the server changes for a new password.
    assert job.urn in container(after, "grafana").dependencies
    assert container(after, "grafana").plain_inputs == container(before, "grafana").plain_inputs
    assert job.inputs["name"] != container(before, "grafana-admin-password").inputs["name"]
    files = {u["file"]: u["content"] for u in job.plain_inputs["uploads"]}
    assert files["/run/secrets/grafana-admin-password"] == fake_secret(
        "audit-x-staging-grafana-admin-password/2026-11-28"
    )
    mounts = {v["containerPath"]: v["volumeName"] for v in job.inputs["volumes"]}
    assert mounts == {"/var/lib/grafana": "audit-x-staging-grafana-data"}


@pytest.mark.parametrize("database_exists", [False, True])
def test_grafana_admin_password_job_writes_the_file_and_resets_only_an_existing_database(
    tmp_path: Path, database_exists: bool
) -> None:
    job = container(run_program("staging"), "grafana-admin-password")
    data = tmp_path / "grafana"
    data.mkdir()
    if database_exists:
        (data / "grafana.db").write_text("")
    (tmp_path / "new-password").write_text(NEW)
    fake = tmp_path / "bin" / "grafana"
    fake.parent.mkdir()
    # Records its arguments and what it reads on stdin, as Grafana's CLI would get them.
    fake.write_text(f'#!/bin/sh\necho "$*" > {tmp_path}/cli.args\ncat > {tmp_path}/cli.stdin\n')
    fake.chmod(0o755)
    job_env = env(job) | {
        "GF_PATHS_DATA": str(data),
        "NEW_PASSWORD_FILE": str(tmp_path / "new-password"),
        "PASSWORD_FILE": str(data / ".admin-password"),
    }
    result = subprocess.run(
        ["/bin/sh", "-c", job.inputs["command"][0]],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", **job_env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (data / ".admin-password").read_text() == NEW
    assert oct((data / ".admin-password").stat().st_mode & 0o777) == "0o600"
    assert NEW not in result.stdout + result.stderr
    if database_exists:
        assert "admin reset-admin-password --password-from-stdin" in (tmp_path / "cli.args").read_text()
        assert (tmp_path / "cli.stdin").read_text() == NEW
    else:
        assert not (tmp_path / "cli.args").exists()
