"""The app's roles: migration first, then web and workers, every role wired the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pulumi
import pytest

from components.app import LAUNCHER
from components.lib import tokens
from components.lib.tokens import label
from components.settings import load_settings
from harness.mock_engine import DeclaredResource, Plan, fake_secret, load_stack_config, run_program, try_program
from tests.helpers import container, containers, env, labels


def test_migration_is_a_one_shot_job_running_db_migrate(plan: Plan) -> None:
    migrate = container(plan, "migrate")
    assert migrate.inputs["command"] == ["bin/rails", "db:migrate"]
    assert migrate.inputs["attach"] is True
    assert migrate.inputs["mustRun"] is False
    assert migrate.inputs["restart"] == "no"
    assert not migrate.inputs.get("rm"), "an auto-removed container cannot be read back for its exit code"


def test_web_and_workers_wait_for_the_migration(plan: Plan) -> None:
    migrate = container(plan, "migrate")
    app_roles = [c for c in containers(plan) if labels(c)[label("service")] == "app" and c is not migrate]
    assert len(app_roles) >= 3
    for role in app_roles:
        assert migrate.urn in role.dependencies, role.name
        # Through depends_on only: an input carrying the job's outputs would be replaced,
        # delete-first, with every re-run of the migration (the engine's dependent replacement).
        assert not any(migrate.urn in deps for deps in role.property_dependencies.values()), role.name


def test_migration_waits_for_the_data_services(plan: Plan, stack: str) -> None:
    dependencies = container(plan, "migrate").dependencies
    for service in ("postgres", "redis", "redpanda", "influxdb"):
        assert any(dep.endswith(f"::audit-x-{stack}-{service}") for dep in dependencies), service


def test_failed_migration_stops_the_rollout() -> None:
    with pytest.raises(
        pulumi.RunError, match=r"audit-x-staging-migrate exited with code 1: the update stops here"
    ) as failure:
        run_program("staging", exit_codes={"audit-x-staging-migrate": 1})
    # The message says how to see why and how to run it again, without `pulumi up --replace`.
    assert "docker logs audit-x-staging-migrate-" in str(failure.value)
    assert "pulumi config set --path deploy.rerunJobs" in str(failure.value)


def test_failed_migration_declares_no_web_or_worker() -> None:
    plan, error = try_program("staging", exit_codes={"audit-x-staging-migrate": 3})
    assert isinstance(error, pulumi.RunError)
    declared = [c.name for c in plan.of_type(tokens.CONTAINER)]
    assert "audit-x-staging-migrate" in declared
    assert "audit-x-staging-postgres" in declared
    assert not any("web" in name or "worker" in name for name in declared), declared


def test_replica_counts_come_from_config(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    names = [c.name for c in containers(plan)]
    assert sum(1 for n in names if n.startswith(f"audit-x-{stack}-web-")) == settings.app.web.replicas
    for worker in settings.app.workers:
        prefix = f"audit-x-{stack}-worker-{worker.name}-"
        assert sum(1 for n in names if n.startswith(prefix)) == worker.replicas
        assert container(plan, "worker", worker.name, "0").inputs["command"] == worker.command


def launch(
    resource: DeclaredResource, tmp_path: Path, command: list[str], *, drop: str | None = None
) -> subprocess.Popen[str]:
    """Start the container's launcher for real, with its environment and its uploaded files mapped
    under `tmp_path` (`drop`: a secret file left out), running `command` in place of the app."""
    uploads = {u["file"]: u["content"] for u in resource.plain_inputs["uploads"]}
    variables = env(resource, plain=True)
    for name, value in list(variables.items()):
        if name.endswith("_FILE") and value in uploads:
            local = tmp_path / value.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            if value != drop:
                local.write_text(uploads[value])
            variables[name] = str(local)
    launcher = tmp_path / "launch"
    launcher.write_text(uploads[LAUNCHER])
    # The image's entrypoint stands in as `env` (it execs what follows, as Rails' does).
    argv = [*resource.inputs["entrypoints"], *command]
    assert argv[:2] == [LAUNCHER, "/rails/bin/docker-entrypoint"]
    return subprocess.Popen(
        ["/bin/sh", str(launcher), "env", *argv[2:]],
        env={"PATH": os.environ["PATH"], **variables},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("role", ["migrate", "web-0", "worker-sidekiq-0", "worker-karafka-0"])
def test_the_launcher_gives_every_role_its_secrets_and_docker_shows_only_paths(
    plan: Plan, stack: str, role: str, tmp_path: Path
) -> None:
    resource = container(plan, role)
    process = launch(resource, tmp_path, ["env"])
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    # What the app process gets: the contract's variables, passwords in the URLs.
    password = fake_secret(f"audit-x-{stack}-postgres-login-a/0")
    redis_password = fake_secret(f"audit-x-{stack}-redis-password")
    assert seen["DATABASE_URL"] == f"postgres://audit_x_a:{password}@postgres:5432/audit_x_{stack}"
    assert seen["REDIS_URL"] == f"redis://:{redis_password}@redis:6379/0"
    assert seen["INFLUXDB_TOKEN"] == fake_secret(f"audit-x-{stack}-influxdb-operator-token")
    assert seen["SECRET_KEY_BASE"] == fake_secret(f"audit-x-{stack}-secret-key-base")
    assert (seen["KAFKA_BROKERS"], seen["INFLUXDB_URL"]) == ("redpanda:9092", "http://influxdb:8086")
    assert (seen["RAILS_ENV"], seen["RAILS_LOG_TO_STDOUT"], seen["LOG_FORMAT"]) == ("production", "true", "json")
    assert seen["AUDIT_X_ENVIRONMENT"] == stack
    # What Docker shows: no secret anywhere in the container's config, only where the files are.
    declared = env(resource, plain=True)
    assert declared["DATABASE_URL"] == f"postgres://audit_x_a@postgres:5432/audit_x_{stack}"
    assert declared["REDIS_URL"] == "redis://redis:6379/0"
    assert declared["DATABASE_PASSWORD_FILE"] == "/run/secrets/database-password"
    for value in (password, redis_password, seen["INFLUXDB_TOKEN"], seen["SECRET_KEY_BASE"]):
        assert value not in json.dumps({k: v for k, v in resource.plain_inputs.items() if k != "uploads"})
    secret_files = [u for u in resource.plain_inputs["uploads"] if u["file"].startswith("/run/secrets/")]
    assert len(secret_files) == 4
    assert {(u["permissions"], u["owner"]) for u in secret_files} == {("0400", "1000")}


def test_the_launcher_refuses_to_start_without_a_secret_file(plan: Plan, tmp_path: Path) -> None:
    process = launch(container(plan, "web-0"), tmp_path, ["true"], drop="/run/secrets/secret-key-base")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 78
    assert "secret-key-base (for SECRET_KEY_BASE) is missing or not readable; not starting" in err


def test_the_launcher_hands_signals_and_the_exit_code_to_the_app(plan: Plan, tmp_path: Path) -> None:
    app = "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done"
    process = launch(container(plan, "web-0"), tmp_path, ["sh", "-c", app])
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)  # to the launcher's pid: the app's, since it execs
    assert process.wait(timeout=10) == 42


def test_secret_env_values_are_masked_in_the_plan(plan: Plan) -> None:
    variables = env(container(plan, "web-0"))
    assert "[secret]" not in variables.values()  # no secret is an environment variable at all
    assert variables["RAILS_ENV"] == "production"


def test_web_probes_live_and_declares_ready_and_health(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    web = container(plan, "web-0")
    port = settings.app.web.port
    assert web.inputs["healthcheck"]["tests"][1] == f"curl -fsS --max-time 4 http://127.0.0.1:{port}/live >/dev/null"
    assert web.inputs["waitTimeout"] == settings.app.web.health_timeout_seconds
    found = labels(web)
    assert found[label("probe.live")] == "/live"
    assert found[label("probe.ready")] == "/ready"
    assert found[label("probe.health")] == "/health"
    assert found[label("port")] == str(port)
    assert env(web)["PORT"] == str(port)


def test_sentry_is_wired_only_when_configured() -> None:
    without = run_program("staging")
    assert "SENTRY_DSN_FILE" not in env(container(without, "web-0"))

    dsn = "https://abc123@o0.ingest.sentry.io/42"
    with_sentry = run_program("staging", secrets={"audit-x:sentryDsn": dsn})
    for name in ("web-0", "worker-sidekiq-0", "migrate"):
        variables = env(container(with_sentry, name))
        assert variables["SENTRY_DSN_FILE"] == "/run/secrets/sentry-dsn"
        assert "SENTRY_DSN" in variables["AUDIT_X_SECRETS"].split()
        assert variables["SENTRY_ENVIRONMENT"] == "staging"
        assert variables["SENTRY_RELEASE"] == "1.4.2"
        uploads = {u["file"]: u["content"] for u in container(with_sentry, name).plain_inputs["uploads"]}
        assert uploads["/run/secrets/sentry-dsn"] == dsn


def test_release_is_the_digest_when_pinned_by_digest() -> None:
    digest = "sha256:" + "ab" * 32
    config = load_stack_config("staging")
    app = load_settings(config).app.model_dump(by_alias=True)
    app["image"] = f"ghcr.io/audit-x/audit_x@{digest}"
    plan = run_program("staging", overrides={"audit-x:app": json.dumps(app)})
    assert env(container(plan, "web-0"))["APP_RELEASE"] == digest
