"""`bin/rails db:migrate`: the image's migrations (db/migrate/<version>_<name>.sql), in order, each
in a transaction with its version recorded in `schema_migrations`, as Rails keeps them.

Told to fail (STAND_IN_FAIL holds `migration`, set by the image's build argument or by whoever
runs it), the run applies its pending migrations and then raises an exception in the server
inside the same transaction: the server rolls it all back, the command exits 1, the schema is as
it was. That is the failure the rollout must stop on.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import postgres_wire
from .environment import endpoints_from_urls
from .logs import log

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "db" / "migrate"
SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version character varying PRIMARY KEY)"


def told_to_fail(what: str) -> bool:
    return what in os.environ.get("STAND_IN_FAIL", "").replace(",", " ").split()


def image_migrations() -> dict[str, Path]:
    """version -> file, for every migration this image carries."""
    return {path.name.split("_", 1)[0]: path for path in sorted(MIGRATIONS_DIR.glob("*.sql"))}


def applied_versions(connection: postgres_wire.Connection) -> set[str]:
    if connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL") != [("t",)]:
        return set()
    return {row[0] for row in connection.query("SELECT version FROM schema_migrations") if row[0]}


def pending(connection: postgres_wire.Connection) -> list[str]:
    applied = applied_versions(connection)
    return [version for version in image_migrations() if version not in applied]


def migrate() -> int:
    credentials = endpoints_from_urls().postgres
    try:
        with postgres_wire.connect(credentials, timeout=30) as connection:
            connection.query(SCHEMA_TABLE)
            todo = pending(connection)
            # One simple query, so one implicit transaction: an error anywhere rolls back all of it.
            statements = []
            for version in todo:
                statements.append(image_migrations()[version].read_text())
                statements.append(f"INSERT INTO schema_migrations (version) VALUES ('{int(version)}')")
            if told_to_fail("migration"):
                statements.append(
                    "DO $$ BEGIN RAISE EXCEPTION 'audit-x app stand-in: this migration was told to fail'; END $$"
                )
            connection.query(";\n".join(statements))
    except (OSError, postgres_wire.PostgresError) as error:
        log("ERROR", "migrations failed; nothing applied", error=f"{type(error).__name__}: {error}")
        return 1
    log("INFO", "migrations applied", applied=todo, database=credentials.database)
    return 0
