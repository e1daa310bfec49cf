"""Staging's data: produced in prod from the weekly drill's verified copy, loaded in staging.

In prod (`produce`), right after the restore drill has verified the newest dump in its scratch
database, and in that database only:

    sample the masked columns' values -> mask (runner/seed.py) -> none of the sample survives?
    -> pg_dump -> s3://<prod's bucket>/staging-seed/postgres/<db>/<stamp>.dump (+ manifest, last)

Prod's database is never connected to: the drill restored the dump into the scratch database,
and the seed is made there. The objects are encrypted with the seed's own KMS key, the one key
staging may decrypt with.

In staging (`stage`, `swap`, `undo`): the newest seed is restored into a side database
(`<db>_seed`) while the app runs on, its row counts checked against the seed's manifest; then,
with the app stopped (ops/seed_load.py stops it), the side database takes the live one's name
in one transaction and the live one is kept as `<db>_before_seed` until the next load, so
`undo` puts it back in seconds. The app's migrations run next (ops/seed_load.py).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from runner import postgres, seed, state
from runner.config import RunnerConfig
from runner.jobs import BackupError, Clock, checksum_mismatch, run_producer_to_s3
from runner.layout import MANIFEST_SUFFIX, SEED_TIER, BackupKey, key_from_manifest, stamp
from runner.storage import BackupStore

log = logging.getLogger("backup.staging_seed")

PRODUCE_KIND = "staging-seed"
LOAD_KIND = "seed-load"
EXTENSION = "dump"
# Fast compression: the seed is made inside the weekly drill's time, and is read once a week.
DUMP_COMPRESSION = "1"


def seed_prefix(database: str) -> str:
    """Where the seeds of prod's `database` are: the one prefix staging's reader may read."""
    return f"{SEED_TIER}/{postgres.KIND}/{database}/"


def staged_name(database: str) -> str:
    return f"{database}_seed"


def previous_name(database: str) -> str:
    return f"{database}_before_seed"


# --- prod: produce -----------------------------------------------------------------------------


def produce(
    config: RunnerConfig,
    store: BackupStore,
    clock: Clock,
    *,
    scratch: str,
    source: BackupKey,
    source_manifest: dict[str, Any],
) -> dict[str, Any]:
    """Mask the drill's verified scratch copy, check it, dump it under staging-seed/."""
    if not (config.seed_rules_file and config.seed_key):
        raise BackupError("no seed is configured here (SEED_RULES_FILE and SEED_KEY_FILE)")
    try:
        rules, digest = seed.load_rules_file(config.seed_rules_file)
    except seed.SeedError as error:
        raise BackupError(str(error)) from error
    started = clock()
    timings: dict[str, float] = {}
    with postgres.connect(config, scratch, host=config.verify_host, port=config.verify_port) as connection:
        connection.autocommit = True
        mark = time.monotonic()
        originals = seed.sample_originals(connection, rules)
        try:
            masked = seed.mask(connection, rules, config.seed_key)
        except seed.SeedError as error:
            raise BackupError(str(error)) from error
        timings["mask_s"] = time.monotonic() - mark
        mark = time.monotonic()
        found = seed.leaks(connection, originals)
        if found:
            # Column names and counts only: the values are a real person's data.
            survivors = ", ".join(f"{column} ({count})" for column, count in sorted(found.items()))
            raise BackupError(f"original values survived masking in {survivors}: no seed was written")
        timings["check_s"] = time.monotonic() - mark
        counts = postgres.table_row_counts(connection)
        migration = postgres.latest_migration(connection)
    masked_rows = {table: counts[f"public.{table}"] for table in masked}
    key = BackupKey(SEED_TIER, postgres.KIND, config.pg_database, stamp(started), EXTENSION)
    mark = time.monotonic()
    size, sha256 = run_producer_to_s3(
        store,
        key,
        ["pg_dump", "--format=custom", f"--compress={DUMP_COMPRESSION}", "--no-password", scratch],
        config.pg_env(scratch, host=config.verify_host, port=config.verify_port),
        lock=None,  # not a backup: a seed is replaced weekly, and expires (the bucket's lifecycle)
    )
    timings["dump_s"] = time.monotonic() - mark
    manifest: dict[str, Any] = {
        "kind": PRODUCE_KIND,
        "environment": config.environment,
        "database": config.pg_database,
        "key": key.data,
        "size_bytes": size,
        "sha256": sha256,
        "source_backup": source.data,
        "source_taken_at": source.taken_at.isoformat(),
        "source_sha256": source_manifest["sha256"],
        "rules_sha256": digest,
        "row_counts": counts,
        "masked_rows": masked_rows,
        "leak_check": {
            "columns": len(originals),
            "values_sampled": sum(len(values) for values in originals.values()),
            "survivors": 0,
        },
        "latest_migration": migration,
        "started_at": started.isoformat(),
        "ended_at": clock().isoformat(),
        "timings_s": {name: round(value, 3) for name, value in timings.items()},
    }
    store.put_json(key.manifest, manifest)  # last: a seed with a manifest is whole
    log.info("staging seed written: %s (%d bytes, from %s)", key.data, size, source.data)
    return manifest


# --- staging: load -----------------------------------------------------------------------------


def newest_seed(store: BackupStore, database: str) -> BackupKey:
    manifests = store.manifest_keys(seed_prefix(database))
    if not manifests:
        raise BackupError(f"no seed of {database} in s3://{store.bucket}/{seed_prefix(database)}")
    return max((key_from_manifest(key, EXTENSION) for key in manifests), key=lambda key: key.stamp)


def choose_seed(store: BackupStore, database: str, which: str | None) -> BackupKey:
    """The newest seed, or the one whose key or stamp `which` names."""
    if not which:
        return newest_seed(store, database)
    if "/" in which:
        return key_from_manifest(which.removesuffix(f".{EXTENSION}") + MANIFEST_SUFFIX, EXTENSION)
    return BackupKey(SEED_TIER, postgres.KIND, database, which, EXTENSION)


def _admin(config: RunnerConfig) -> psycopg.Connection[Any]:
    connection = postgres.connect(config, "postgres")
    connection.autocommit = True
    return connection


def _exists(admin: psycopg.Connection[Any], database: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def loaded_seed(connection: psycopg.Connection[Any], database: str) -> dict[str, Any] | None:
    """What a database was loaded from: the comment `stage` puts on it (None: not a seed)."""
    row = connection.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (database,)
    ).fetchone()
    try:
        return json.loads(row[0]) if row and row[0] else None
    except json.JSONDecodeError:
        return None


def stage(config: RunnerConfig, store: BackupStore, which: str | None) -> dict[str, Any]:
    """Restore a seed into `<db>_seed`, beside the live database, and check its row counts."""
    source_database = config.seed_source_database or config.pg_database
    key = choose_seed(store, source_database, which)
    manifest = store.get_json(key.manifest)
    staged = staged_name(config.pg_database)
    with _admin(config) as admin:
        postgres.drop_database(admin, staged)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(staged)))
    started = time.monotonic()
    try:
        sha256, code, errors = postgres.stream_into(
            store,
            key,
            ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={staged}"],
            config.pg_env(staged),
        )
        if sha256 != manifest["sha256"]:
            raise checksum_mismatch(key, manifest["sha256"], sha256, f"{staged} is not used")
        if code != 0:
            raise BackupError(f"pg_restore of {key.data} into {staged} failed with code {code}: {errors}")
        with postgres.connect(config, staged) as restored:
            found = postgres.table_row_counts(restored)
        expected: dict[str, int] = manifest["row_counts"]
        if found != expected:
            differences = {t: (expected.get(t), found.get(t)) for t in set(expected) | set(found)}
            raise BackupError(
                f"{staged} does not hold what {key.data} did: "
                + ", ".join(f"{t} {e} != {f}" for t, (e, f) in sorted(differences.items()) if e != f)
            )
    except BaseException:
        with _admin(config) as admin:
            postgres.drop_database(admin, staged)
        raise
    # On the database itself: which seed it holds and its rows travel with it through the swap.
    record = {
        "seed": key.data,
        "taken_at": key.taken_at.isoformat(),
        "source_backup": manifest["source_backup"],
        "row_counts": found,
    }
    with _admin(config) as admin:
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(staged), sql.Literal(json.dumps(record)))
        )
    return {
        **record,
        "staged_as": staged,
        "latest_migration": manifest["latest_migration"],
        "restore_s": round(time.monotonic() - started, 3),
        "size_bytes": manifest["size_bytes"],
    }


def swap(config: RunnerConfig, clock: Clock) -> dict[str, Any]:
    """`<db>_seed` becomes `<db>`; `<db>` is kept as `<db>_before_seed`. Run with the app stopped:
    whatever is still connected to `<db>` is disconnected."""
    live, staged, previous = config.pg_database, staged_name(config.pg_database), previous_name(config.pg_database)
    with _admin(config) as admin:
        record = loaded_seed(admin, staged)
        if record is None:
            raise BackupError(f"no staged seed in {staged}: run `python -m runner seed-load --stage` first")
        postgres.drop_database(admin, previous)
        _rename_pair(admin, live, previous, staged)
    _record_loaded(config, clock, record)
    log.info("staging now runs on %s; the data it had is in %s", record["seed"], previous)
    return {**record, "database": live, "previous": previous}


def _record_loaded(config: RunnerConfig, clock: Clock, record: dict[str, Any] | None) -> None:
    """Which seed the live database holds, for the age metric; none when it holds no seed."""
    if record is None:
        state.forget(config.state_dir, LOAD_KIND)
    else:
        state.record_success(
            config.state_dir, LOAD_KIND, clock(), {k: v for k, v in record.items() if k != "row_counts"}
        )


def undo(config: RunnerConfig, clock: Clock) -> dict[str, Any]:
    """Put the data from before the last swap back (it stays until the next swap; `swap` puts
    the seed back again)."""
    live, staged, previous = config.pg_database, staged_name(config.pg_database), previous_name(config.pg_database)
    with _admin(config) as admin:
        if not _exists(admin, previous):
            raise BackupError(f"there is no {previous} to go back to")
        postgres.drop_database(admin, staged)
        _rename_pair(admin, live, staged, previous)
        record = loaded_seed(admin, live)
    _record_loaded(config, clock, record)
    return {"database": live, "now_holds": record or "the data from before the seed", "set_aside_as": staged}


def _rename_pair(admin: psycopg.Connection[Any], live: str, set_aside_as: str, replacement: str) -> None:
    """`live` becomes `set_aside_as` and `replacement` becomes `live`, in one transaction: there
    is never a moment without a `live` database. New connections to `live` are refused while it
    happens, and the ones the runner's login holds are ended (the app is stopped by then, and it
    uses the same login). The login is no superuser (components/data/postgres_logins.sh): it may
    end its own sessions alone, and so only as itself, not as the owner role it acts as; a session
    of anyone else makes the rename fail, naming the database."""
    name = sql.Identifier
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(name(live)))
    try:
        admin.execute("SET ROLE NONE")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND usename = session_user",
            (live,),
        )
        admin.execute("RESET ROLE")
        with admin.transaction():
            admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(name(live), name(set_aside_as)))
            admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(name(replacement), name(live)))
            admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(name(live)))
    except BaseException:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(name(live)))
        raise
    # The data set aside stays reachable for `undo` and for a look, by an operator.
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(name(set_aside_as)))


def seed_age_s(config: RunnerConfig, now: datetime) -> tuple[float, str] | None:
    """How old the data staging runs on is (since prod's seed was made), and that seed's key."""
    entry = state.read(config.state_dir).get(LOAD_KIND)
    if not entry:
        return None
    return (now - datetime.fromisoformat(entry["taken_at"])).total_seconds(), entry["seed"]
