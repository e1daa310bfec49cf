"""Masking prod's data for staging (runner/seed.py), on a real PostgreSQL: the audit-like data set
is cloned into scratch databases and masked by its rules (harness/audit_dataset.py)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from harness import audit_dataset
from harness.local_services import PostgresCluster, postgres_bindir, postgres_cluster
from runner import seed

pytestmark = pytest.mark.services

SOURCE = "audit_x_source"
KEY = "masking-key-of-prod-0123456789abcdef"
RULES = seed.parse_rules(audit_dataset.MASKING_RULES)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        cluster.psql(f"CREATE DATABASE {SOURCE}")
        audit_dataset.build(dsn(cluster, SOURCE), 8)
        yield cluster


def dsn(cluster: PostgresCluster, database: str) -> str:
    return f"host={cluster.datadir} port={cluster.port} user=postgres dbname={database}"


def clone(pg: PostgresCluster, name: str) -> psycopg.Connection:
    """A scratch copy of the source, as the weekly drill leaves one."""
    pg.psql(f"DROP DATABASE IF EXISTS {name}")
    pg.psql(f"CREATE DATABASE {name} TEMPLATE {SOURCE}")
    return psycopg.connect(dsn(pg, name), autocommit=True)


def counts(connection: psycopg.Connection) -> dict[str, int]:
    tables = ("organizations", "users", "api_tokens", "audit_events")
    return {t: next(iter(connection.execute(f"SELECT count(*) FROM {t}")))[0] for t in tables}


def test_masking_keeps_rows_keys_and_uniqueness_and_leaks_nothing(pg: PostgresCluster) -> None:
    # The clone first: a template with a session open cannot be copied.
    with clone(pg, "scratch_one") as scratch, psycopg.connect(dsn(pg, SOURCE)) as source:
        masked = seed.mask(scratch, RULES, KEY)
        # Every table with a masked column (schema_migrations and ar_internal_metadata keep all).
        assert masked == ["api_tokens", "audit_events", "organizations", "users"]
        assert counts(scratch) == counts(source)  # every row is there
        # Foreign keys and unique constraints held through the rewrites (they would have failed).
        assert scratch.execute(
            "SELECT count(*) FROM users WHERE email NOT LIKE 'user-%@example.invalid'"
        ).fetchone() == (0,)
        originals = seed.sample_originals(source, RULES)
        assert {("users", "email"), ("users", "full_name"), ("api_tokens", "digest")} <= set(originals)
        assert seed.leaks(scratch, originals) == {}
    # The whole seed as it would be dumped, scanned for any original value.
    text = subprocess.run(
        [str(postgres_bindir() / "pg_dump"), "--data-only", dsn(pg, "scratch_one")],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    with psycopg.connect(dsn(pg, SOURCE)) as source:
        originals = [
            value
            for (value,) in source.execute(
                "SELECT email FROM users UNION ALL SELECT full_name FROM users "
                "UNION ALL SELECT host(ip) FROM (SELECT DISTINCT ip FROM audit_events WHERE ip IS NOT NULL LIMIT 500) i"
            ).fetchall()
        ]
    assert originals and [value for value in originals if value in text] == []  # scanned: the whole dump


def test_the_same_key_gives_the_same_values_and_another_key_others(pg: PostgresCluster) -> None:
    with clone(pg, "scratch_a") as a, clone(pg, "scratch_b") as b, clone(pg, "scratch_c") as c:
        seed.mask(a, RULES, KEY)
        seed.mask(b, RULES, KEY)
        seed.mask(c, RULES, "another-key")
        query = "SELECT id, email, full_name FROM users ORDER BY id LIMIT 50"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
        assert a.execute(query).fetchall() != c.execute(query).fetchall()


def test_a_column_no_rule_names_stops_the_run_with_its_name(pg: PostgresCluster) -> None:
    with clone(pg, "scratch_new_column") as scratch:
        scratch.execute("ALTER TABLE users ADD COLUMN phone text")  # a migration added it
        with pytest.raises(seed.SeedError, match=r"no masking rule for users\.phone"):
            seed.mask(scratch, RULES, KEY)
        # Nothing was changed: the run stopped before any UPDATE.
        assert scratch.execute("SELECT count(*) FROM users WHERE email LIKE 'user-%@example.invalid'").fetchone() == (
            0,
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hash", "users.email = 'hash': expected one of keep, null, email, name, phone, ip"),
        ("truncate", "users.email = 'truncate': truncate needs an argument"),
        ("truncate:ten", "expected a whole number after truncate:"),
        ("keep:1", "keep takes no argument"),
    ],
)
def test_a_bad_rule_names_the_column_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(seed.SeedError, match=message):
        seed.parse_rules({"users": {"email": text}})


def test_prods_config_holds_the_rules_and_a_bad_one_is_named() -> None:
    from components.settings import ConfigError, load_settings  # noqa: PLC0415
    from harness.mock_engine import load_stack_config  # noqa: PLC0415

    prod = load_settings(load_stack_config("prod"))
    assert prod.staging_seed is not None and prod.staging_seed.rules == audit_dataset.MASKING_RULES
    staging = load_settings(load_stack_config("staging")).staging_seed
    assert staging is not None and staging.rules is None  # staging only loads seeds: from prod
    assert staging.source_stack == "audit-x/audit-x/prod"
    config = load_stack_config("prod") | {"audit-x:stagingSeed": '{"rules": {"users": {"email": "hash"}}}'}
    with pytest.raises(ConfigError, match=r"audit-x:stagingSeed\.rules = .*users\.email = 'hash'"):
        load_settings(config)
    both = load_stack_config("prod") | {
        "audit-x:stagingSeed": '{"rules": {"users": {"email": "email"}}, "sourceStack": "audit-x/audit-x/prod"}'
    }
    with pytest.raises(ConfigError, match=r"audit-x:stagingSeed.*expected either rules .* or sourceStack"):
        load_settings(both)


@pytest.mark.parametrize("method", sorted(seed.FAKES))
def test_each_fake_gives_a_value_of_its_kind_that_cannot_be_a_real_one(pg: PostgresCluster, method: str) -> None:
    originals = {"email": "ann@corp.example", "name": "Ann Smith", "phone": "+44 20 7946 0000", "ip": "192.0.2.7"}
    with clone(pg, f"scratch_fake_{method}") as scratch:
        column_type = "inet" if method == "ip" else "text"
        scratch.execute(f"CREATE TABLE people (id int PRIMARY KEY, value {column_type})")
        scratch.execute("INSERT INTO people VALUES (1, %s), (2, %s)", (originals[method], originals[method]))
        only_people = {"people": {"id": seed.Rule("keep"), "value": seed.Rule(method)}}
        rules = {
            table: {column: seed.Rule("keep") for column in columns}
            for table, columns in seed.columns_of(scratch).items()
        }
        seed.mask(scratch, rules | only_people, KEY)
        (first,), (second,) = scratch.execute("SELECT value::text FROM people ORDER BY id").fetchall()
    assert first == second != originals[method]  # deterministic, and changed
    expected = {
        "email": r"user-[0-9a-f]{20}@example\.invalid",
        "name": r"Person [0-9A-F]{10}",
        "phone": r"\+1555\d{7}",  # 555: the fictional exchange
        "ip": r"2(4\d|5[0-5])\.\d+\.\d+\.\d+/32",  # 240.0.0.0/4: reserved, never a client's
    }[method]
    assert re.fullmatch(expected, first), first


def test_a_table_a_view_depends_on_is_masked_all_the_same(pg: PostgresCluster) -> None:
    """A rewrite is refused where a view reads the column: the rules are applied by UPDATE there."""
    with clone(pg, "scratch_view") as scratch, psycopg.connect(dsn(pg, SOURCE)) as source:
        scratch.execute("CREATE VIEW user_emails AS SELECT id, email FROM users")
        masked = seed.mask(scratch, RULES, KEY)
        assert "users" in masked
        assert scratch.execute(
            "SELECT count(*) FROM user_emails WHERE email LIKE 'user-%@example.invalid'"
        ).fetchone() == (counts(source)["users"],)


def test_the_masking_key_is_never_part_of_a_statement(pg: PostgresCluster) -> None:
    """Statements reach the server's log (log_min_duration_statement): the key is a setting of the
    masking transaction, passed as a parameter, and the statements only name that setting."""
    with clone(pg, "scratch_key") as scratch:
        statements: list[str] = []
        original = scratch.execute

        def recording(query: object, params: object = None, **kwargs: object) -> object:
            text = query.as_string(scratch) if isinstance(query, sql.Composable) else str(query)
            statements.append(text)
            return original(query, params, **kwargs)  # type: ignore[arg-type]

        scratch.execute = recording  # type: ignore[method-assign]
        seed.mask(scratch, RULES, KEY)
    assert any("ALTER TABLE" in s and "current_setting('audit_x.masking_key')" in s for s in statements)
    assert not [s for s in statements if KEY in s]


def test_values_a_rule_keeps_by_design_are_no_leak_and_a_dropped_columns_rule_is_ignored(
    pg: PostgresCluster,
) -> None:
    """A short user agent is its own truncation and `{}` its own constant: found after masking,
    they must not stop the run. A rule for a column a migration dropped names nothing to sample."""
    with clone(pg, "scratch_by_design") as scratch:
        scratch.execute("UPDATE organizations SET settings = '{}' WHERE id = 1")
        scratch.execute(
            "INSERT INTO audit_events (organization_id, request_id, action, resource_type, resource_id, "
            "changes, user_agent, occurred_at) VALUES (1, gen_random_uuid(), 'login', 'User', 1, '{}', "
            "'curl/8', now()), (1, gen_random_uuid(), 'login', 'User', 2, '{}', 'Mozilla/5.0 (X11) long', now())"
        )
        rules = RULES | {"users": RULES["users"] | {"nickname": seed.Rule("name")}}  # dropped since
        originals = seed.sample_originals(scratch, rules)
        assert "{}" not in originals[("organizations", "settings")]
        assert originals[("audit_events", "user_agent")] == ["Mozilla/5.0 (X11) long"]
        assert ("users", "nickname") not in originals
        seed.mask(scratch, rules, KEY)
        assert seed.leaks(scratch, originals) == {}
        assert scratch.execute("SELECT count(*) FROM audit_events WHERE user_agent = 'curl/8'").fetchone() == (1,)
