"""The app stand-in on the rig, wired as staging declares it: PostgreSQL 17 with its password and
logins jobs, the real Redis with its password job, the Redpanda stand-in, then the migration job,
a web replica and a worker, every container created from the plan's declaration
(harness/docker_rig/stand_ins/declared.py) on one internal network of the test's own, each with
the uploads the program gives it: the launcher (components/app_launcher.sh) and the secret files.

Measured here: each role's declared health check, the migration's exit code, and the connection
check's counts on the web role's /stand-in/connections.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.docker_rig import catalogue
from harness.docker_rig.containers import Container, network, unique
from harness.docker_rig.engine import Rig
from harness.docker_rig.images import ImageSpec, RigImages
from harness.docker_rig.stand_ins import (
    APP_FAILING_MIGRATION,
    APP_RELEASE_1,
    APP_RELEASE_2,
    SERVICES,
)
from harness.docker_rig.stand_ins.declared import declared_container, run_to_end
from harness.mock_engine import Plan
from tests.helpers import container as declared

HEALTHY_WITHIN = 60.0


def postgres_spec() -> ImageSpec | None:
    """The program's PostgreSQL 17 server image as the rig builds it, once its catalogue has it."""
    return getattr(catalogue, "POSTGRES_SERVER", None)


@pytest.fixture(scope="module")
def staging(plans: dict[str, Plan]) -> Plan:
    return plans["staging"]


@dataclass
class DataServices:
    rig: Rig
    network: str
    images: dict[str, str]
    postgres: Container
    redis: Container


@contextlib.contextmanager
def volumes(rig: Rig, *names: str) -> Iterator[dict[str, str]]:
    made = {name: unique("rig-vol") for name in names}
    for volume in made.values():
        rig.docker("volume", "create", volume)
    try:
        yield made
    finally:
        for volume in made.values():
            rig.docker("volume", "rm", "--force", volume, check=False)


def run_job(rig: Rig, plan: Plan, name: str, image: str, *, net: str, shared: dict[str, str]) -> str:
    with declared_container(rig, declared(plan, name), image, network=net, volumes=shared) as job:
        code, output = run_to_end(rig, job)
    assert code == 0, f"{name}: {output}"
    return output


@pytest.fixture(scope="module")
def data(rig_images: RigImages, staging: Plan) -> Iterator[DataServices]:
    spec = postgres_spec()
    if spec is None:
        pytest.skip("the rig's catalogue has no PostgreSQL 17 server image yet (catalogue.POSTGRES_SERVER)")
    rig = rig_images.rig
    images = {reference: rig_images[s] for reference, s in catalogue.STAND_INS.items()}
    postgres_image = rig_images[spec]
    redis_image = images[SERVICES["redis"].reference]
    with contextlib.ExitStack() as stack:
        net = stack.enter_context(network(rig, internal=True))
        pg = stack.enter_context(volumes(rig, "data", "credentials", "socket", "spool"))
        pg_shared = {
            "/var/lib/postgresql/data": pg["data"],
            "/var/lib/audit-x-credentials": pg["credentials"],
            "/var/run/postgresql": pg["socket"],
            "/var/spool/pgbackrest": pg["spool"],
        }
        run_job(rig, staging, "postgres-password", postgres_image, net=net, shared=pg_shared)
        server = declared(staging, "postgres")
        # No pgBackRest repository here (the backup tests have one): with archiving on, every WAL
        # segment's archive-push fails, and the image's first-start server never shuts down
        # (pgBackRest error 082 after 60 s; the entrypoint gives up). The app's side needs none.
        command = ["archive_mode=off" if part == "archive_mode=on" else part for part in server.plain_inputs["command"]]
        assert command != server.plain_inputs["command"]
        postgres = stack.enter_context(
            declared_container(rig, server, postgres_image, network=net, volumes=pg_shared, command=command)
        )
        postgres.wait_for("healthy", HEALTHY_WITHIN)
        run_job(rig, staging, "postgres-logins", postgres_image, net=net, shared=pg_shared)
        redis_volumes = stack.enter_context(volumes(rig, "data", "credentials"))
        redis_shared = {"/data": redis_volumes["data"], "/var/lib/audit-x-credentials": redis_volumes["credentials"]}
        run_job(rig, staging, "redis-password", redis_image, net=net, shared=redis_shared)
        redis = stack.enter_context(
            declared_container(rig, declared(staging, "redis"), redis_image, network=net, volumes=redis_shared)
        )
        broker = stack.enter_context(
            declared_container(rig, declared(staging, "redpanda"), images[SERVICES["redpanda"].reference], network=net)
        )
        redis.wait_for("healthy", HEALTHY_WITHIN)
        broker.wait_for("healthy", HEALTHY_WITHIN)
        yield DataServices(rig, net, images, postgres, redis)


def app_uploads(plan: Plan, role: tuple[str, ...], replace: dict[str, str] | None = None) -> list[dict]:
    """The role's declared uploads (the launcher, the secret files), some contents replaced."""
    uploads = [dict(u) for u in declared(plan, *role).plain_inputs["uploads"]]
    for upload in uploads:
        if upload["file"] in (replace or {}):
            upload["content"] = (replace or {})[upload["file"]]
    return uploads


def migrate(data: DataServices, plan: Plan, image: str) -> tuple[int, str]:
    with declared_container(data.rig, declared(plan, "migrate"), image, network=data.network) as job:
        return run_to_end(data.rig, job)


def connections(web: Container) -> dict:
    code, body = web.exec("curl", "-fsS", "http://127.0.0.1:3000/stand-in/connections")
    assert code == 0, body
    return json.loads(body)


def test_the_migration_web_and_worker_run_on_postgres_17_and_redis(data: DataServices, staging: Plan) -> None:
    release_2 = data.images[APP_RELEASE_2.reference]
    code, output = migrate(data, staging, data.images[APP_FAILING_MIGRATION.reference])
    assert code == 1 and "told to fail" in output
    code, output = migrate(data, staging, data.images[APP_RELEASE_1.reference])
    assert code == 0, output
    with declared_container(data.rig, declared(staging, "web", "0"), release_2, network=data.network) as web:
        assert web.wait_for("healthy", HEALTHY_WITHIN) < HEALTHY_WITHIN
        # Release 2 carries a migration release 1 did not run: not ready until it has.
        code, ready = web.exec("curl", "-s", "http://127.0.0.1:3000/ready")
        assert json.loads(ready)["reasons"] == ["migrations pending: 20260201000001"]
        assert migrate(data, staging, release_2)[0] == 0
        code, ready = web.exec("curl", "-s", "-w", " %{http_code}", "http://127.0.0.1:3000/ready")
        assert ready.endswith(" 200"), ready
        code, health = web.exec("curl", "-s", "http://127.0.0.1:3000/health")
        assert {name: check["status"] for name, check in json.loads(health).items()} == {
            "postgres": "ok",
            "redis": "ok",
            "kafka": "ok",
        }
        first = connections(web)
        time.sleep(3.0)
        second = connections(web)
        elapsed = second["now"] - first["now"]
        for service in ("postgres", "redis"):
            gained = second[service]["successes"] - first[service]["successes"]
            assert 4 * elapsed <= gained <= 11 * elapsed, (service, gained, elapsed)
            assert second[service]["failures"] == 0, second[service]["last_error"]
        worker = declared(staging, "worker", "sidekiq", "0")
        with declared_container(data.rig, worker, release_2, network=data.network) as sidekiq:
            sidekiq.wait_for("healthy", HEALTHY_WITHIN)


def test_a_wrong_password_is_counted_as_a_failure_on_the_rig(data: DataServices, staging: Plan) -> None:
    role = ("web", "0")
    wrong = app_uploads(
        staging,
        role,
        {"/run/secrets/database-password": "not-the-password", "/run/secrets/redis-password": "not-the-password"},
    )
    image = data.images[APP_RELEASE_1.reference]
    with declared_container(data.rig, declared(staging, *role), image, network=data.network, uploads=wrong) as web:
        web.wait_for("healthy", HEALTHY_WITHIN)  # /live checks nothing behind it
        time.sleep(1.5)
        counts = connections(web)
        _, health = web.exec("curl", "-s", "http://127.0.0.1:3000/health")
    for service, refusal in (("postgres", "28P01"), ("redis", "WRONGPASS")):
        assert counts[service]["successes"] == 0
        assert counts[service]["failures"] >= 5
        assert refusal in counts[service]["last_error"]
    statuses = {name: check["status"] for name, check in json.loads(health).items()}
    assert statuses == {"postgres": "error", "redis": "error", "kafka": "ok"}
