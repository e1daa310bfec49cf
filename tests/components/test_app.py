"""The app's roles: migration first, then web and workers, every role wired the same way.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
its roles from stand-ins, with and without a canary or a backup before the migration."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pytest

from components.app import LAUNCHER, App
from components.lib import tokens
from components.lib.tokens import label
from components.settings import AppSettings, CanarySettings, WebSettings, WorkerSettings, load_settings
from harness.mock_engine import (
    DeclaredResource,
    Plan,
    fake_secret,
    load_stack_config,
    mock_image_id,
    run_component,
    run_program,
    try_program,
)
from tests.helpers import children, component_context, container, containers, declared, env, labels, networks, upload


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


# --- built alone -------------------------------------------------------------------------------

STABLE_IMAGE = "ghcr.io/audit-x/audit_x:1.4.2"
CANARY_IMAGE_ALONE = "ghcr.io/audit-x/audit_x:1.5.0"
APP_ENV = {"DATABASE_URL": "postgres://audit_x_b@db.test:6543/audit_x_test", "KAFKA_BROKERS": "redpanda:9092"}
APP_SECRETS = {"DATABASE_PASSWORD": "database-password-value", "SECRET_KEY_BASE": "secret-key-base-value"}


def app_settings(*, canary: bool = False) -> AppSettings:
    return AppSettings(
        image=STABLE_IMAGE,
        uid=1001,
        web=WebSettings(replicas=2, memory_limit_mb=640, port=3100, health_timeout_seconds=90, drain_seconds=25),
        workers=[
            WorkerSettings(name="events", command=["bin/events"], replicas=1, memory_limit_mb=256),
            WorkerSettings(name="mailer", command=["bin/mailer"], replicas=0, memory_limit_mb=128),
        ],
        migration_memory_limit_mb=384,
        migration_timeout_seconds=900,
        canary=CanarySettings(image=CANARY_IMAGE_ALONE, weight=10, replicas=1) if canary else None,
    )


def build_app(*, canary: bool = False, backup_first: bool = False) -> Plan:
    def declare() -> None:
        ctx = component_context()
        data_ready = docker.Container("data-ready-stand-in", name="data-ready", image="postgres:17.6-bookworm")

        def backup(for_migration: pulumi.Output[str]) -> docker.Container:
            pulumi.export("backupFor", for_migration)
            return docker.Container("backup-stand-in", name="backup", image="runner:1", attach=True)

        App(
            "audit-x-test-app",
            app_settings(canary=canary),
            ctx=ctx,
            env=APP_ENV,
            secrets={name: pulumi.Output.secret(value) for name, value in APP_SECRETS.items()},
            networks=networks(ctx),
            depends_on=[data_ready],
            backup_before_migration=backup if backup_first else None,
        )

    return run_component(declare)


def app_container(plan: Plan, name: str) -> DeclaredResource:
    return declared(plan, tokens.CONTAINER, f"audit-x-test-{name}")


def test_app_alone_declares_its_image_migration_web_and_workers_by_replica_count() -> None:
    plan = build_app()
    assert children(plan, "audit-x-test-app") == [
        (tokens.CONTAINER, "audit-x-test-migrate"),
        (tokens.CONTAINER, "audit-x-test-web-0"),
        (tokens.CONTAINER, "audit-x-test-web-1"),
        (tokens.CONTAINER, "audit-x-test-worker-events-0"),
        (tokens.REMOTE_IMAGE, "audit-x-test-app-image"),
    ]
    migrate = app_container(plan, "migrate")
    assert migrate.inputs["image"] == mock_image_id(STABLE_IMAGE)
    assert (migrate.inputs["command"], migrate.inputs["entrypoints"]) == (
        ["bin/rails", "db:migrate"],
        ["/run/audit-x/launch", "/rails/bin/docker-entrypoint"],
    )
    assert (migrate.inputs["attach"], migrate.inputs["memory"]) == (True, 384)
    assert migrate.custom_timeouts == {"create": "1200s"}  # 900 s to migrate, 300 s to pull and create
    worker = app_container(plan, "worker-events-0")
    assert (worker.inputs["command"], worker.inputs["memory"]) == (["bin/events"], 256)
    assert env(worker)["HEARTBEAT_FILE"] == "/tmp/audit-x-heartbeat"


def test_every_role_gets_the_same_wiring_and_no_secret_in_its_environment() -> None:
    plan = build_app()
    common = {
        **APP_ENV,
        "RAILS_ENV": "production",
        "RACK_ENV": "production",
        "RAILS_MAX_THREADS": "5",
        "RAILS_LOG_TO_STDOUT": "true",
        "RAILS_LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "DATABASE_PASSWORD_FILE": "/run/secrets/database-password",
        "SECRET_KEY_BASE_FILE": "/run/secrets/secret-key-base",
        "AUDIT_X_SECRETS": "DATABASE_PASSWORD SECRET_KEY_BASE",
        "AUDIT_X_URL_PASSWORDS": "DATABASE_URL=DATABASE_PASSWORD REDIS_URL=REDIS_PASSWORD",
        "APP_RELEASE": "1.4.2",
    }
    assert env(app_container(plan, "migrate")) == {**common, "APP_ROLE": "migrate"}
    assert env(app_container(plan, "web-1")) == {**common, "APP_ROLE": "web", "PORT": "3100"}
    assert env(app_container(plan, "worker-events-0")) == {
        **common,
        "APP_ROLE": "events",
        "HEARTBEAT_FILE": "/tmp/audit-x-heartbeat",
    }
    assert app_container(plan, "web-1").inputs["networksAdvanced"] == [
        {"name": "audit-x-test-data", "aliases": []},
        {"name": "audit-x-test-app", "aliases": ["web", "web-1"]},
    ]


def test_the_secrets_reach_every_role_as_masked_files_of_the_apps_user() -> None:
    plan = build_app()
    for name in ("migrate", "web-0", "web-1", "worker-events-0"):
        role = app_container(plan, name)
        assert upload(role, "/run/audit-x/launch")["permissions"] == "0555"
        for path, value in (
            ("/run/secrets/database-password", "database-password-value"),
            ("/run/secrets/secret-key-base", "secret-key-base-value"),
        ):
            assert upload(role, path)["content"] == "[secret]"
            assert upload(role, path, plain=True) == {
                "file": path,
                "content": value,
                "permissions": "0400",
                "owner": "1001",
                "group": "1001",
            }
            assert value not in str({k: v for k, v in role.plain_inputs.items() if k != "uploads"})


def test_the_migration_waits_for_what_it_is_given_and_web_and_workers_for_the_migration() -> None:
    plan = build_app()
    migrate = app_container(plan, "migrate")
    assert declared(plan, tokens.CONTAINER, "data-ready-stand-in").urn in migrate.dependencies
    for name in ("web-0", "web-1", "worker-events-0"):
        role = app_container(plan, name)
        assert migrate.urn in role.dependencies
        # Through depends_on alone: a re-run migration never replaces them.
        assert not any(migrate.urn in deps for deps in role.property_dependencies.values())


def test_web_is_probed_on_its_port_and_drains_as_its_settings_say() -> None:
    web = app_container(build_app(), "web-0")
    assert web.inputs["healthcheck"]["tests"] == [
        "CMD-SHELL",
        "curl -fsS --max-time 4 http://127.0.0.1:3100/live >/dev/null",
    ]
    assert web.inputs["healthcheck"]["startPeriod"] == "1m0s"
    assert (web.inputs["waitTimeout"], web.inputs["stopTimeout"], web.inputs["memory"]) == (90, 25, 640)
    assert {k: labels(web)[label(k)] for k in ("port", "probe.live", "probe.ready", "probe.health")} == {
        "port": "3100",
        "probe.live": "/live",
        "probe.ready": "/ready",
        "probe.health": "/health",
    }
    assert re.fullmatch(r"audit-x-test-web-0-[0-9a-f]{8}", web.inputs["name"])
    assert (web.delete_before_replace_defined, web.delete_before_replace) == (True, False)


def test_a_backup_before_migration_is_made_for_that_migration_and_gates_it() -> None:
    plan = build_app(backup_first=True)
    migrate = app_container(plan, "migrate")
    # The revision the backup is made for is the one in the migration's own Docker name.
    assert migrate.inputs["name"] == f"audit-x-test-migrate-{plan.outputs['backupFor']}"
    assert declared(plan, tokens.CONTAINER, "backup-stand-in").urn in migrate.dependencies

    without = build_app()
    assert "backupFor" not in without.outputs
    assert not [r for r in without.resources if r.name == "backup-stand-in"]


def test_without_a_canary_there_is_none_and_with_one_its_web_runs_the_new_image_after_its_migration() -> None:
    without = build_app()
    assert not [r.name for r in without.resources if "canary" in r.name]

    plan = build_app(canary=True)
    assert (tokens.REMOTE_IMAGE, "audit-x-test-app-canary-image") in children(plan, "audit-x-test-app")
    canary = app_container(plan, "web-canary-0")
    assert canary.inputs["image"] == mock_image_id(CANARY_IMAGE_ALONE)
    assert (labels(canary)[label("track")], env(canary)["APP_RELEASE"]) == ("canary", "1.5.0")
    assert canary.inputs["networksAdvanced"][1] == {"name": "audit-x-test-app", "aliases": ["web", "web-canary-0"]}
    # The newest version's migrations run first (expand-only); the stable web keeps its image.
    migrate = app_container(plan, "migrate")
    assert migrate.inputs["image"] == mock_image_id(CANARY_IMAGE_ALONE)
    assert migrate.urn in canary.dependencies
    assert app_container(plan, "web-0").inputs["image"] == mock_image_id(STABLE_IMAGE)
