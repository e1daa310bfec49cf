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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, LiteralString

from psycopg import sql

# {digest}: the value's HMAC-SHA256 under the key, in hex.
FAKES: dict[str, LiteralString] = {
    "email": "'user-' || left({digest}, 20) || '@example.invalid'",
    "name": "'Person ' || upper(left({digest}, 10))",
    "phone": "'+1555' || lpad((('x' || left({digest}, 8))::bit(32)::bigint % 10000000)::text, 7, '0')",
    "ip": "('10.' || get_byte(decode({digest}, 'hex'), 0) || '.' || get_byte(decode({digest}, 'hex'), 1) || '.' "
    "|| get_byte(decode({digest}, 'hex'), 2))::inet",
}
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

    def expression(self, column: str) -> sql.Composable:
        """The SQL the column is set to (the key is the query's one parameter, where used)."""
        name = sql.Identifier(column)
        if self.method == "null":
            return sql.SQL("NULL")
        if self.method in FAKES:
            digest = sql.SQL("encode(hmac({}::text, %(key)s, 'sha256'), 'hex')").format(name)
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


def mask(connection: Any, rules: Rules, key: str) -> dict[str, int]:
    """Apply the rules to the scratch copy `connection` is on, in one transaction; rows per table."""
    missing = unclassified(connection, rules)
    if missing:
        raise SeedError(f"no masking rule for {', '.join(missing)}: classify them in stagingSeed.rules first")
    connection.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    masked: dict[str, int] = {}
    with connection.transaction():
        for table, columns in columns_of(connection).items():
            changes = [
                sql.SQL("{} = {}").format(sql.Identifier(column), rules[table][column].expression(column))
                for column in columns
                if rules[table][column].method != "keep"
            ]
            if changes:
                statement = sql.SQL("UPDATE {} SET {}").format(sql.Identifier(table), sql.SQL(", ").join(changes))
                masked[table] = connection.execute(statement, {"key": key}).rowcount
    return masked


def leaks(source: Any, masked: Any, rules: Rules, sample: int = 200) -> list[str]:
    """Original values of masked columns (a sample of each from the source) found in the copy."""
    found = []
    for table, columns in rules.items():
        for column, rule in columns.items():
            if rule.method not in MASKING:
                continue
            query = sql.SQL("SELECT DISTINCT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT {n}").format(
                c=sql.Identifier(column), t=sql.Identifier(table), n=sql.Literal(sample)
            )
            originals = [row[0] for row in source.execute(query).fetchall()]
            if not originals:
                continue
            check = sql.SQL("SELECT {c}::text FROM {t} WHERE {c}::text = ANY(%s) LIMIT 5").format(
                c=sql.Identifier(column), t=sql.Identifier(table)
            )
            found += [f"{table}.{column}: {value!r}" for (value,) in masked.execute(check, (originals,)).fetchall()]
    return found
