"""PostgreSQL built alone: the owner's password job, the server, the logins job, in that order,
and no password among the server's inputs."""

from __future__ import annotations

import pulumi

from components.data.postgres import Postgres
from components.lib import tokens
from components.settings import PostgresSettings
from harness.mock_engine import Plan, run_component
from tests.helpers import component_context, data_network, env

SETTINGS = PostgresSettings(memory_limit_mb=1024, shared_buffers_mb=256, effective_cache_size_mb=768)


def build(active: str = "a") -> Plan:
    def declare() -> None:
        ctx = component_context()
        postgres = Postgres(
            "audit-x-test-postgres",
            SETTINGS,
            ctx=ctx,
            database="audit_x_test",
            password=pulumi.Output.secret("owner-secret"),
            logins={"a": pulumi.Output.secret("login-a-secret"), "b": pulumi.Output.secret("login-b-secret")},
            active_login=active,
            data_network=data_network(ctx),
        )
        pulumi.export("login", postgres.app_login)
        pulumi.export("password", postgres.app_password)

    return run_component(declare)


def test_jobs_and_server_come_in_order_through_depends_on_only() -> None:
    found = {r.name: r for r in build().of_type(tokens.CONTAINER)}
    password, server, logins = (
        found["audit-x-test-postgres-password"],
        found["audit-x-test-postgres"],
        found["audit-x-test-postgres-logins"],
    )
    assert password.urn in server.dependencies
    assert server.urn in logins.dependencies
    for later, earlier in ((server, password), (logins, server)):
        assert not any(earlier.urn in deps for deps in later.property_dependencies.values())


def test_the_server_carries_no_password_and_gets_shared_memory() -> None:
    server = {r.name: r for r in build().of_type(tokens.CONTAINER)}["audit-x-test-postgres"]
    assert "secret" not in str(server.plain_inputs)
    assert server.inputs["shmSize"] == SETTINGS.shm_size_mb
    assert (server.delete_before_replace_defined, server.delete_before_replace) == (True, True)


def test_the_logins_job_gets_both_logins_and_the_active_one_is_what_consumers_use() -> None:
    logins = {r.name: r for r in build("b").of_type(tokens.CONTAINER)}["audit-x-test-postgres-logins"]
    assert env(logins)["LOGINS"] == "audit_x_a audit_x_b"
    # The role that owns the app's database (postgres_logins.sh): the logins act as it.
    assert (env(logins)["OWNER_ROLE"], env(logins)["POSTGRES_DB"]) == ("audit_x_owner", "audit_x_test")
    files = {u["file"]: u["content"] for u in logins.plain_inputs["uploads"]}
    assert files == {"/run/secrets/audit_x_a": "login-a-secret", "/run/secrets/audit_x_b": "login-b-secret"}


def test_consumers_get_the_active_login_and_its_password() -> None:
    for active in ("a", "b"):
        outputs = build(active).plain_outputs
        assert (outputs["login"], outputs["password"]) == (f"audit_x_{active}", f"login-{active}-secret")
