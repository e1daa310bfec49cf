"""The app's roles: migration first, then web and workers, every role wired the same way."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.settings import load_settings
from tests.helpers import CONTAINER, container, containers, env, labels
from tools.mock_engine import Plan, fake_secret, load_stack_config, run_program, try_program


def test_migration_is_a_one_shot_job_running_db_migrate(plan: Plan) -> None:
    migrate = container(plan, "migrate")
    assert migrate.inputs["command"] == ["bin/rails", "db:migrate"]
    assert migrate.inputs["attach"] is True
    assert migrate.inputs["mustRun"] is False
    assert migrate.inputs["restart"] == "no"
    assert not migrate.inputs.get("rm"), "an auto-removed container cannot be read back for its exit code"


def test_web_and_workers_wait_for_the_migration(plan: Plan) -> None:
    migrate = container(plan, "migrate")
    app_roles = [c for c in containers(plan) if labels(c)["io.audit-x.service"] == "app" and c is not migrate]
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
    declared = [c.name for c in plan.of_type(CONTAINER)]
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


def test_every_role_is_wired_to_every_dependency(plan: Plan, stack: str) -> None:
    # The app logs in as the login in use (a, until the first rotation), never as the owner.
    password = fake_secret(f"audit-x-{stack}-postgres-login-a/0")
    redis_password = fake_secret(f"audit-x-{stack}-redis-password")
    for name in ("migrate", "web-0", "worker-sidekiq-0", "worker-karafka-0"):
        variables = env(container(plan, name), plain=True)
        assert variables["DATABASE_URL"] == f"postgres://audit_x_a:{password}@postgres:5432/audit_x_{stack}"
        assert variables["REDIS_URL"] == f"redis://:{redis_password}@redis:6379/0"
        assert variables["KAFKA_BROKERS"] == "redpanda:9092"
        assert variables["INFLUXDB_URL"] == "http://influxdb:8086"
        assert variables["INFLUXDB_TOKEN"] == fake_secret(f"audit-x-{stack}-influxdb-operator-token")
        assert variables["SECRET_KEY_BASE"] == fake_secret(f"audit-x-{stack}-secret-key-base")
        assert variables["RAILS_ENV"] == "production"
        assert variables["RAILS_LOG_TO_STDOUT"] == "true"
        assert variables["LOG_FORMAT"] == "json"
        assert variables["AUDIT_X_ENVIRONMENT"] == stack


def test_secret_env_values_are_masked_in_the_plan(plan: Plan) -> None:
    variables = env(container(plan, "web-0"))
    for key in ("DATABASE_URL", "REDIS_URL", "INFLUXDB_TOKEN", "SECRET_KEY_BASE"):
        assert variables[key] == "[secret]"
    assert variables["RAILS_ENV"] == "production"


def test_web_probes_live_and_declares_ready_and_health(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    web = container(plan, "web-0")
    port = settings.app.web.port
    assert web.inputs["healthcheck"]["tests"][1] == f"curl -fsS --max-time 4 http://127.0.0.1:{port}/live >/dev/null"
    assert web.inputs["waitTimeout"] == settings.app.web.health_timeout_seconds
    found = labels(web)
    assert found["io.audit-x.probe.live"] == "/live"
    assert found["io.audit-x.probe.ready"] == "/ready"
    assert found["io.audit-x.probe.health"] == "/health"
    assert found["io.audit-x.port"] == str(port)
    assert env(web)["PORT"] == str(port)


def test_sentry_is_wired_only_when_configured() -> None:
    without = run_program("staging")
    assert "SENTRY_DSN" not in env(container(without, "web-0"))

    dsn = "https://abc123@o0.ingest.sentry.io/42"
    with_sentry = run_program("staging", secrets={"audit-x:sentryDsn": dsn})
    for name in ("web-0", "worker-sidekiq-0", "migrate"):
        variables = env(container(with_sentry, name))
        assert variables["SENTRY_DSN"] == "[secret]"
        assert variables["SENTRY_ENVIRONMENT"] == "staging"
        assert variables["SENTRY_RELEASE"] == "1.4.2"
        assert env(container(with_sentry, name), plain=True)["SENTRY_DSN"] == dsn


def test_release_is_the_digest_when_pinned_by_digest() -> None:
    digest = "sha256:" + "ab" * 32
    config = load_stack_config("staging")
    app = load_settings(config).app.model_dump(by_alias=True)
    app["image"] = f"ghcr.io/audit-x/audit_x@{digest}"
    plan = run_program("staging", overrides={"audit-x:app": json.dumps(app)})
    assert env(container(plan, "web-0"))["APP_RELEASE"] == digest
