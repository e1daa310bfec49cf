"""The app's database roles on a real PostgreSQL: the logins job's script and environment taken
from prod's plan and run against a throwaway server, where `audit_x` stands in for the image's
bootstrap superuser (POSTGRES_USER) and owns what a stack deployed before the owner role existed
had created. Then, as the app's login: every attack below must fail with "insufficient privilege",
and the migrations' own statements must succeed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import LiteralString

import psycopg
import pytest
from psycopg import errors

from components.lib.build import REPO_ROOT
from harness.local_services import PostgresCluster, postgres_cluster, run_logins_job
from harness.mock_engine import run_program
from runner import pitr
from tests.helpers import container, env

pytestmark = pytest.mark.services

BOOTSTRAP_PASSWORD = "Bootstrap0123456789abcdefghijklmnopqrstu"
LOGIN_PASSWORD = "LoginA0123456789abcdefghijklmnopqrstuvwx"
DATABASE = "audit_x_prod"

# What a SQL injection in the app would try, to break out of the database or to blind PITR.
ATTACKS: dict[str, LiteralString] = {
    "read pgBackRest's S3 key and cipher passphrase": f"SELECT pg_read_file('{pitr.SECRETS_FILE}')",
    "read any server file as binary": "SELECT pg_read_binary_file('/etc/passwd')",
    "list the data directory": "SELECT pg_ls_dir('.')",
    "run a program": "COPY (SELECT 1) TO PROGRAM 'id'",
    "read a server file into a table": "COPY existing_events FROM '/etc/passwd'",
    "write a server file": "COPY existing_events TO '/tmp/audit-x-stolen'",
    "stop PITR through archive_command": "ALTER SYSTEM SET archive_command = '/bin/true'",
    "reload the server's configuration": "SELECT pg_reload_conf()",
    "import a server file as a large object": "SELECT lo_import('/etc/passwd')",
    "create a role": "CREATE ROLE intruder LOGIN PASSWORD 'x'",
    "make itself a superuser": "ALTER ROLE audit_x_a SUPERUSER",
    "give the owner role CREATEROLE": "ALTER ROLE audit_x_owner CREATEROLE",
    "take the other login's password": "ALTER ROLE audit_x_b PASSWORD 'Taken0123456789'",
    "join pg_read_server_files": "GRANT pg_read_server_files TO audit_x_owner",
    "join pg_execute_server_program": "GRANT pg_execute_server_program TO audit_x_a",
    "become the bootstrap superuser": "SET ROLE audit_x",
    "become it by session authorization": "SET SESSION AUTHORIZATION audit_x",
    "reach other servers (dblink)": "CREATE EXTENSION dblink",
    "read files through a foreign table (file_fdw)": "CREATE EXTENSION file_fdw",
    "load C code": "CREATE FUNCTION sh(cstring) RETURNS int AS 'libc.so.6', 'system' LANGUAGE c",
    "hook every statement (event trigger)": (
        "CREATE EVENT TRIGGER spy ON ddl_command_start EXECUTE FUNCTION pg_catalog.pg_event_trigger_ddl_commands()"
    ),
    "drop another database": "DROP DATABASE postgres",
    "switch WAL segments at will": "SELECT pg_switch_wal()",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """The server after the logins job, over a database whose objects the bootstrap user owned."""
    job = container(run_program("prod"), "postgres-logins")
    with postgres_cluster() as pg:
        pg.psql(f"CREATE ROLE audit_x LOGIN SUPERUSER PASSWORD '{BOOTSTRAP_PASSWORD}'")
        pg.psql(f"CREATE DATABASE {DATABASE} OWNER audit_x")
        # What the app had created while its login acted as the bootstrap user: all of it its.
        pg.psql(
            "SET ROLE audit_x; CREATE TABLE existing_events (id bigserial PRIMARY KEY, action text);"
            "CREATE SCHEMA reporting; CREATE VIEW reporting.recent AS SELECT * FROM existing_events;"
            "CREATE TYPE severity AS ENUM ('info', 'critical');"
            "CREATE FUNCTION next_event() RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint';"
            "CREATE SEQUENCE invoice_numbers; CREATE EXTENSION pgcrypto",
            database=DATABASE,
        )
        result = run_logins_job(
            pg,
            job.inputs["command"][0],
            env(job),
            {"audit_x_a": LOGIN_PASSWORD, "audit_x_b": LOGIN_PASSWORD + "b"},
            tmp_path_factory.mktemp("secrets"),
        )
        assert result.returncode == 0, result.stderr
        yield pg


def app_session(pg: PostgresCluster) -> psycopg.Connection:
    dsn = f"host=127.0.0.1 port={pg.port} user=audit_x_a dbname={DATABASE}"
    return psycopg.connect(dsn, password=LOGIN_PASSWORD, autocommit=True)


def test_the_owner_role_cannot_log_in_and_holds_no_power_over_the_server(server: PostgresCluster) -> None:
    row = server.psql(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolreplication, rolbypassrls, rolcreatedb "
        "FROM pg_roles WHERE rolname = 'audit_x_owner'"
    )
    assert row == "f|f|f|f|f|t"
    logins = server.psql(
        "SELECT string_agg(rolname || ':' || (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication "
        "OR rolbypassrls), ',' ORDER BY rolname) "
        "FROM pg_roles WHERE rolname IN ('audit_x_a', 'audit_x_b')"
    )
    assert logins == "audit_x_a:false,audit_x_b:false"  # no attribute at all but LOGIN
    # Its only membership is the owner role's; none of the built-in roles that reach the server.
    memberships = server.psql(
        "SELECT string_agg(DISTINCT r.rolname, ',' ORDER BY r.rolname) FROM pg_roles r, pg_roles m "
        "WHERE m.rolname IN ('audit_x_a', 'audit_x_b', 'audit_x_owner') AND pg_has_role(m.oid, r.oid, 'MEMBER') "
        "AND r.oid <> m.oid"
    )
    assert memberships == "audit_x_owner"


def test_what_the_bootstrap_user_owned_now_belongs_to_the_owner_role(server: PostgresCluster) -> None:
    owners = server.psql(
        "SELECT string_agg(what || '=' || owner, ',' ORDER BY what) FROM ("
        "SELECT 'database' AS what, pg_get_userbyid(datdba)::text AS owner FROM pg_database"
        "  WHERE datname = current_database()"
        " UNION ALL SELECT relname, pg_get_userbyid(relowner)::text FROM pg_class"
        "  WHERE relname IN ('existing_events', 'existing_events_id_seq', 'recent', 'invoice_numbers')"
        " UNION ALL SELECT 'schema reporting', pg_get_userbyid(nspowner)::text FROM pg_namespace"
        "  WHERE nspname = 'reporting'"
        " UNION ALL SELECT 'type severity', pg_get_userbyid(typowner)::text FROM pg_type WHERE typname = 'severity'"
        " UNION ALL SELECT 'function next_event', pg_get_userbyid(proowner)::text FROM pg_proc"
        "  WHERE proname = 'next_event'"
        ") o",
        database=DATABASE,
    )
    assert owners == (
        "database=audit_x_owner,existing_events=audit_x_owner,existing_events_id_seq=audit_x_owner,"
        "function next_event=audit_x_owner,invoice_numbers=audit_x_owner,recent=audit_x_owner,"
        "schema reporting=audit_x_owner,type severity=audit_x_owner"
    )
    # The extension's own functions stay the extension's (they follow CREATE/DROP EXTENSION).
    assert (
        server.psql(
            "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'gen_random_uuid' "
            "AND pronamespace = 'public'::regnamespace",
            database=DATABASE,
        )
        == "audit_x"
    )


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_as_the_apps_login_is_refused(server: PostgresCluster, attack: str) -> None:
    with app_session(server) as app, pytest.raises(errors.InsufficientPrivilege):
        app.execute(ATTACKS[attack])


def test_the_app_cannot_end_the_sessions_of_the_jobs(server: PostgresCluster) -> None:
    dsn = f"host=127.0.0.1 port={server.port} user=audit_x dbname=postgres"
    with psycopg.connect(dsn, password=BOOTSTRAP_PASSWORD) as job, app_session(server) as app:
        job_pid = job.info.backend_pid
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("SELECT pg_terminate_backend(%s)", (job_pid,))
        assert job.execute("SELECT 1").fetchone() == (1,)


def test_the_migrations_own_statements_succeed(server: PostgresCluster) -> None:
    with app_session(server) as app:
        assert app.execute("SELECT current_user, session_user").fetchone() == ("audit_x_owner", "audit_x_a")
        app.execute("CREATE TABLE audit_entries (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body text)")
        app.execute("ALTER TABLE audit_entries ADD COLUMN occurred_at timestamptz NOT NULL DEFAULT now()")
        app.execute("CREATE INDEX audit_entries_occurred_at ON audit_entries (occurred_at)")
        app.execute("CREATE INDEX CONCURRENTLY audit_entries_body ON audit_entries (body)")
        # What a stack deployed before this change had created, the app still migrates.
        app.execute("ALTER TABLE existing_events ADD COLUMN severity severity")
        app.execute("CREATE OR REPLACE VIEW reporting.recent AS SELECT id, action, severity FROM existing_events")
        # The extensions a Rails schema declares (enable_extension): PostgreSQL's trusted ones.
        for extension in ("citext", "pg_trgm", "hstore", "uuid-ossp", "btree_gist"):
            app.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
        app.execute("ALTER TABLE audit_entries ADD COLUMN email citext")
        app.execute("INSERT INTO audit_entries (body, email) VALUES ('login', 'Ops@Example.com')")
        assert app.execute("SELECT count(*) FROM audit_entries WHERE email = 'ops@example.com'").fetchone() == (1,)
        assert app.execute("SELECT nextval('invoice_numbers'), next_event()").fetchone() == (1, 1)
        # The backup runner's restore drill, as this login: a database of its own, made and dropped.
        app.execute("CREATE DATABASE audit_x_prod_verify_drill")
        app.execute("DROP DATABASE audit_x_prod_verify_drill WITH (FORCE)")
        app.execute("DROP TABLE audit_entries")


def test_a_second_run_changes_nothing_and_keeps_the_logins_working(server: PostgresCluster, tmp_path: Path) -> None:
    job = container(run_program("prod"), "postgres-logins")
    result = run_logins_job(
        server,
        job.inputs["command"][0],
        env(job),
        {"audit_x_a": LOGIN_PASSWORD, "audit_x_b": LOGIN_PASSWORD + "b"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert LOGIN_PASSWORD not in result.stdout + result.stderr
    with app_session(server) as app:
        assert app.execute("SELECT count(*) FROM existing_events").fetchone() == (0,)


def test_the_docs_count_the_attacks_this_test_makes() -> None:
    text = (REPO_ROOT / "docs" / "backup-restore.md").read_text().replace("\n", " ")
    assert f"login, {len(ATTACKS)} attacks are refused" in text
