"""A realistic audit_x-like data set, for backup tests and benchmarks.

Several tables with foreign keys, indexes (B-tree, unique, GIN on JSON), text, JSONB, inet and
timestamps, plus Rails' schema_migrations: the shape an audit-log app's database has, not
pgbench's blank filler. Rows are generated server-side (generate_series), so a gigabyte takes
seconds to describe and about a minute to write. Data is random but seeded: the same call
builds the same database.
"""

from __future__ import annotations

from typing import Any

import psycopg

SCHEMA = """
CREATE TABLE organizations (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    plan text NOT NULL DEFAULT 'standard',
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id),
    email text NOT NULL UNIQUE,
    full_name text NOT NULL,
    role text NOT NULL,
    last_sign_in_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE api_tokens (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id),
    digest text NOT NULL UNIQUE,
    scopes text[] NOT NULL,
    expires_at timestamptz
);
CREATE TABLE audit_events (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id),
    actor_id bigint REFERENCES users(id),
    request_id uuid NOT NULL,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id bigint NOT NULL,
    changes jsonb NOT NULL,
    ip inet,
    user_agent text,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX audit_events_org_time ON audit_events (organization_id, occurred_at DESC);
CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id);
CREATE INDEX audit_events_changes ON audit_events USING gin (changes jsonb_path_ops);
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
CREATE TABLE ar_internal_metadata (
    key varchar PRIMARY KEY, value varchar, created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL
);
INSERT INTO schema_migrations (version)
    SELECT to_char(timestamp '2025-01-06' + (n || ' days')::interval, 'YYYYMMDD') || '120000'
    FROM generate_series(0, 41) AS n;
INSERT INTO ar_internal_metadata VALUES ('environment', 'production', now(), now());
"""

ORGANIZATIONS = 50  # written out in POPULATE_ACCOUNTS too: queries must be literal strings
USERS_PER_ORG = 40

POPULATE_ACCOUNTS = """
INSERT INTO organizations (name, plan, settings, created_at)
SELECT 'Org ' || n || ' ' || md5(n::text),
       (ARRAY['free','standard','enterprise'])[1 + n % 3],
       jsonb_build_object('retention_days', 30 + n % 365, 'sso', n % 2 = 0, 'region', 'eu-' || n % 4),
       timestamptz '2024-01-01' + (n || ' hours')::interval
FROM generate_series(1, 50) AS n;
INSERT INTO users (organization_id, email, full_name, role, last_sign_in_at, created_at)
SELECT 1 + n % 50, 'user' || n || '@example' || (n % 50) || '.com',
       initcap(md5(n::text)), (ARRAY['admin','auditor','member'])[1 + n % 3],
       timestamptz '2026-01-01' + (n || ' minutes')::interval, timestamptz '2024-06-01' + (n || ' minutes')::interval
FROM generate_series(1, 2000) AS n;
INSERT INTO api_tokens (user_id, digest, scopes, expires_at)
SELECT 1 + n % 2000, encode(sha256(n::text::bytea), 'hex'),
       ARRAY['read', CASE WHEN n % 4 = 0 THEN 'write' ELSE 'read:audit' END],
       timestamptz '2027-01-01' + (n || ' hours')::interval
FROM generate_series(1, 500) AS n;
"""

# Run with parameters, so SQL's modulo is written %%.
EVENTS_BATCH = """
INSERT INTO audit_events
    (organization_id, actor_id, request_id, action, resource_type, resource_id, changes, ip, user_agent, occurred_at)
SELECT 1 + (n * 7) %% %(orgs)s,
       CASE WHEN n %% 10 = 0 THEN NULL ELSE 1 + (n * 13) %% %(users)s END,
       md5(n::text || 'req')::uuid,
       (ARRAY['create','update','destroy','login','export','permission.grant'])[1 + n %% 6],
       (ARRAY['Invoice','User','Document','Policy','ApiToken'])[1 + n %% 5],
       (n * 31) %% 100000,
       jsonb_build_object(
           'before', jsonb_build_object('status', 'draft', 'amount', n %% 9973, 'note', md5(n::text)),
           'after', jsonb_build_object('status', 'sent', 'amount', n %% 9973 + 1, 'note', md5((n + 1)::text)),
           'meta', jsonb_build_object('source', 'web', 'tags', jsonb_build_array('a' || n %% 7, 'b' || n %% 11))
       ),
       ('10.' || n %% 250 || '.' || (n / 250) %% 250 || '.' || (n / 62500) %% 250)::inet,
       'Mozilla/5.0 (X11; Linux x86_64) audit-x-client/' || n %% 40 || '.' || n %% 7 || ' ' || md5((n * 3)::text),
       timestamptz '2026-01-01' + (n || ' seconds')::interval
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""
EVENTS_PER_BATCH = 10_000


def build(dsn: str, target_mb: float, password: str | None = None) -> dict[str, Any]:
    """Create the schema and fill it until the database is about `target_mb` MB."""
    with psycopg.connect(dsn, password=password, autocommit=True) as connection:
        connection.execute(SCHEMA)
        connection.execute(POPULATE_ACCOUNTS)
        first = 1
        while database_mb(connection) < target_mb:
            connection.execute(EVENTS_BATCH, _batch(first, EVENTS_PER_BATCH))
            first += EVENTS_PER_BATCH
        connection.execute("ANALYZE")
        return {"size_mb": round(database_mb(connection), 1), "audit_events": first - 1}


def database_mb(connection: psycopg.Connection[Any]) -> float:
    row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return (row[0] if row else 0) / (1024 * 1024)


def add_events(dsn: str, count: int, start: int, password: str | None = None) -> None:
    """More audit events after a backup, so a later backup differs from an earlier one."""
    with psycopg.connect(dsn, password=password, autocommit=True) as connection:
        connection.execute(EVENTS_BATCH, _batch(start, count))


def _batch(first: int, count: int) -> dict[str, int]:
    return {"first": first, "last": first + count - 1, "orgs": ORGANIZATIONS, "users": ORGANIZATIONS * USERS_PER_ORG}


# How each column of this data set is masked for staging (runner/seed.py): the example for the
# app's own `stagingSeed.rules`, and the seed tests' fixture.
MASKING_RULES: dict[str, dict[str, str]] = {
    "organizations": {"id": "keep", "name": "name", "plan": "keep", "settings": "constant:{}", "created_at": "keep"},
    "users": {
        "id": "keep",
        "organization_id": "keep",
        "email": "email",
        "full_name": "name",
        "role": "keep",
        "last_sign_in_at": "shift_days:-3",
        "created_at": "keep",
    },
    "api_tokens": {"id": "keep", "user_id": "keep", "digest": "email", "scopes": "keep", "expires_at": "keep"},
    "audit_events": {
        "id": "keep",
        "organization_id": "keep",
        "actor_id": "keep",
        "request_id": "keep",
        "action": "keep",
        "resource_type": "keep",
        "resource_id": "keep",
        "changes": "constant:{}",
        "ip": "ip",
        "user_agent": "truncate:12",
        "occurred_at": "keep",
    },
    "schema_migrations": {"version": "keep"},
    "ar_internal_metadata": {"key": "keep", "value": "keep", "created_at": "keep", "updated_at": "keep"},
}
