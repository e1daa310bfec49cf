"""Staging's data: a scrubbed copy of prod, masked by rules, never carrying a real person's data.

Every column of every table of the app's schema has one rule (`stagingSeed.rules` in prod's
stack config), and a column no rule names stops the run with its table and column: a column a
migration added is classified before the next seed, never copied by accident.

    keep                    the value as it is (ids, foreign keys, enums, counts, timestamps)
    null                    NULL
    email | name | phone | ip   a fake of that kind, derived from the value by HMAC-SHA256 with
                            the masking key: the same input and key give the same fake, so joins
                            and uniqueness survive, and without the key nothing leads back
    shift_days:N            a timestamp moved N days (the shape of time kept, not the moments)
    truncate:N              text cut to N characters
    constant:VALUE          one value for every row (cast to the column's type)

The rules run as SQL in the scratch copy only (pgcrypto's `hmac`), never against prod's database.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql

# {digest}: the value's HMAC-SHA256 under the masking key, in hex. The key is a setting of the
# masking transaction (KEY_SETTING), never part of a statement's text: statements get logged.
FAKES: dict[str, LiteralString] = {
    "email": "'user-' || left({digest}, 20) || '@example.invalid'",
    "name": "'Person ' || upper(left({digest}, 10))",
    "phone": "'+1555' || lpad((('x' || left({digest}, 8))::bit(32)::bigint % 10000000)::text, 7, '0')",
    # In 240.0.0.0/4, reserved and never a client's: a fake cannot equal a real address by chance.
    # 28 bits of the digest, read once (each mention of {digest} is one HMAC per row).
    "ip": "'240.0.0.0'::inet + ('x' || left({digest}, 7))::bit(28)::bigint",
}
KEY_SETTING = "audit_x.masking_key"
SIMPLE = ("keep", "null")
WITH_ARGUMENT = ("shift_days", "truncate", "constant")
METHODS = (*SIMPLE, *FAKES, *WITH_ARGUMENT)
# Whose values must not survive masking (the leak check compares them with the source).
MASKING = (*FAKES, "truncate", "constant", "shift_days")


class SeedError(ValueError):
    """A rule that cannot be applied, or a column without one: the message names them."""


@dataclass(frozen=True)
class Rule:
    method: str
    argument: str | None = None

    @classmethod
    def parse(cls, where: str, text: str) -> Rule:
        method, _, argument = text.partition(":")
        if method not in METHODS:
            raise SeedError(
                f"{where} = {text!r}: expected one of {', '.join(METHODS)} (with :N or :VALUE where needed)"
            )
        if method in WITH_ARGUMENT and not argument:
            raise SeedError(f"{where} = {text!r}: {method} needs an argument, such as {method}:30")
        if method in ("shift_days", "truncate") and not re.fullmatch(r"-?\d+", argument):
            raise SeedError(f"{where} = {text!r}: expected a whole number after {method}:")
        if method not in WITH_ARGUMENT and argument:
            raise SeedError(f"{where} = {text!r}: {method} takes no argument")
        return cls(method, argument or None)

    def keeps(self, value: str) -> bool:
        """Whether masking leaves `value` as it was, by design: the constant itself, or text no
        longer than the truncation. Such a value surviving is no leak."""
        if self.method == "constant":
            return value == self.argument
        if self.method == "truncate":
            return len(value) <= int(self.argument or 0)
        return False

    def expression(self, column: str) -> sql.Composable:
        """The SQL the column is set to (the key is the query's one parameter, where used)."""
        name = sql.Identifier(column)
        if self.method == "null":
            return sql.SQL("NULL")
        if self.method in FAKES:
            digest = sql.SQL("encode(hmac({}::text, current_setting({}), 'sha256'), 'hex')").format(
                name, sql.Literal(KEY_SETTING)
            )
            return sql.SQL(FAKES[self.method]).format(digest=digest)
        if self.method == "shift_days":
            return sql.SQL("{} + make_interval(days => {})").format(name, sql.Literal(int(self.argument or 0)))
        if self.method == "truncate":
            return sql.SQL("left({}, {})").format(name, sql.Literal(int(self.argument or 0)))
        if self.method == "constant":
            return sql.Literal(self.argument)
        raise AssertionError(f"no expression for {self.method}")


Rules = dict[str, dict[str, Rule]]


def parse_rules(document: Mapping[str, Mapping[str, str]]) -> Rules:
    return {
        table: {column: Rule.parse(f"{table}.{column}", text) for column, text in columns.items()}
        for table, columns in document.items()
    }


def columns_of(connection: Any, schema: str = "public") -> dict[str, list[str]]:
    rows = connection.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE' ORDER BY 1, c.ordinal_position",
        (schema,),
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def unclassified(connection: Any, rules: Rules) -> list[str]:
    """`table.column` of every column no rule names: privacy by default."""
    return [
        f"{table}.{column}"
        for table, columns in columns_of(connection).items()
        for column in columns
        if column not in rules.get(table, {})
    ]


def column_types(connection: Any, schema: str = "public") -> dict[tuple[str, str], str]:
    """Each column's type as SQL spells it (`character varying(255)`, `jsonb`)."""
    rows = connection.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
        (schema,),
    ).fetchall()
    return {(table, column): type_ for table, column, type_ in rows}


def mask(connection: Any, rules: Rules, key: str, *, rewrite: bool = True) -> list[str]:
    """Apply the rules to the scratch copy `connection` is on, in one transaction; the tables
    whose columns were masked (their rows are counted once, by the caller, with all the others).

    Each table with masked columns is rewritten once (ALTER TABLE ... ALTER COLUMN ... TYPE
    <its own type> USING <the rule>): a rewrite writes each row once and rebuilds the indexes in
    bulk, where an UPDATE writes a second version of every row and maintains every index row by
    row (bench/seed.py measured the difference). A table a view or rule depends on cannot
    be rewritten so: it is UPDATEd instead."""
    missing = unclassified(connection, rules)
    if missing:
        raise SeedError(f"no masking rule for {', '.join(missing)}: classify them in stagingSeed.rules first")
    connection.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    types = column_types(connection)
    masked: list[str] = []
    with connection.transaction():
        connection.execute("SELECT set_config(%s, %s, true)", (KEY_SETTING, key))
        for table, columns in columns_of(connection).items():
            changed = {column: rules[table][column] for column in columns if rules[table][column].method != "keep"}
            if changed:
                _mask_table(connection, table, changed, types, rewrite=rewrite)
                masked.append(table)
    return masked


_TYPE_NAME = re.compile(r'^[A-Za-z0-9_ ."(),\[\]]+$')


def _type_sql(type_name: str) -> sql.SQL:
    """A type as format_type() spells it, checked before it becomes part of a statement."""
    if not _TYPE_NAME.fullmatch(type_name):
        raise SeedError(f"unexpected column type {type_name!r}")
    return sql.SQL(cast(LiteralString, type_name))


def _mask_table(
    connection: Any, table: str, changed: dict[str, Rule], types: dict[tuple[str, str], str], *, rewrite: bool
) -> None:
    def typed(column: str, rule: Rule) -> sql.Composable:
        return sql.SQL("CAST(({}) AS {})").format(rule.expression(column), _type_sql(types[(table, column)]))

    alter = sql.SQL("ALTER TABLE {} {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(
            sql.SQL("ALTER COLUMN {} TYPE {} USING {}").format(
                sql.Identifier(column), _type_sql(types[(table, column)]), typed(column, rule)
            )
            for column, rule in changed.items()
        ),
    )
    if rewrite:
        try:
            with connection.transaction():  # a savepoint: the UPDATE below runs if this is refused
                connection.execute(alter)
            return
        except psycopg.errors.FeatureNotSupported:  # "cannot alter type of a column used by a view or rule"
            pass
    update = sql.SQL("UPDATE {} SET {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(column), typed(column, rule)) for column, rule in changed.items()
        ),
    )
    connection.execute(update)


Originals = dict[tuple[str, str], list[str]]


def sample_originals(connection: Any, rules: Rules, sample: int = 200) -> Originals:
    """Up to `sample` distinct values of each masked column, read before masking: what must not
    survive it. Held in memory only, never logged. Columns the database has only (a rule for a
    column a migration dropped is ignored), and not the values a rule leaves as they are by
    design: one equal to its constant, one no longer than its truncation."""
    originals: Originals = {}
    for table, columns in columns_of(connection).items():
        for column in columns:
            rule = rules.get(table, {}).get(column)
            if rule is None or rule.method not in MASKING:
                continue
            # The first rows a scan meets, not DISTINCT: DISTINCT hashes the whole table first.
            query = sql.SQL("SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT {n}").format(
                c=sql.Identifier(column), t=sql.Identifier(table), n=sql.Literal(sample)
            )
            values = sorted(v for v in {row[0] for row in connection.execute(query).fetchall()} if not rule.keeps(v))
            if values:
                originals[(table, column)] = values
    return originals


def leaks(connection: Any, originals: Originals) -> dict[str, int]:
    """`table.column` -> how many of its sampled originals are still in it after masking, each
    table scanned once for all its columns. The values themselves are never returned: they are
    a real person's data."""
    by_table: dict[str, dict[str, list[str]]] = {}
    for (table, column), values in originals.items():
        by_table.setdefault(table, {})[column] = values
    found: dict[str, int] = {}
    for table, columns in by_table.items():
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(
                sql.SQL("count(DISTINCT {c}::text) FILTER (WHERE {c}::text = ANY(%s))").format(c=sql.Identifier(column))
                for column in columns
            ),
            sql.Identifier(table),
        )
        row = connection.execute(query, list(columns.values())).fetchone() or ()
        found |= {f"{table}.{column}": int(count) for column, count in zip(columns, row, strict=True) if count}
    return found


def rules_digest(document: Mapping[str, Mapping[str, str]]) -> str:
    """Names the rules a seed was masked by, in its manifest (the rules, not the key)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def load_rules_file(path: Path) -> tuple[Rules, str]:
    """The rules file the Pulumi program writes from `stagingSeed.rules`, parsed, and its digest."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SeedError(f"the masking rules file {path}: cannot read it ({error})") from None
    return parse_rules(document), rules_digest(document)
