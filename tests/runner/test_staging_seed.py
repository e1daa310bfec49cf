"""Staging's seed, end to end on real servers: prod's runner makes it from the weekly drill's
verified copy (runner/staging_seed.py), staging's runner loads it, on a real PostgreSQL and the
moto S3 server. "Prod" is the rig's database; "staging" is another database on the same server."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString

import boto3
import psycopg
import pytest

from components.lib.tokens import label
from harness import audit_dataset
from harness.local_services import postgres_bindir
from harness.runner_rig import DATABASE, DAY, PASSWORD, Rig, metric_lines, run
from ops.seed_load import SeedLoad, SeedLoadError
from runner import config as runner_config
from runner import seed, staging_seed, state
from runner.cli import make_seed_store, make_store, serve

pytestmark = pytest.mark.services

STAGING = "audit_x_staging_test"
MASKING_KEY = "prod-masking-key-0123456789abcdefghijklmnopqrstuvwxyz"
# The app's sample queries (docs/staging-data.md): what staging's load test exercises.
SAMPLE_QUERIES: dict[str, LiteralString] = {
    "recent events of an organization, with their actors": (
        "SELECT e.id, u.email, e.action FROM audit_events e JOIN users u ON u.id = e.actor_id "
        "WHERE e.organization_id = 8 ORDER BY e.occurred_at DESC LIMIT 20"
    ),
    "a user's tokens": "SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.id = 2",
    "events per action": "SELECT action, count(*) FROM audit_events GROUP BY action",
}


@pytest.fixture(scope="module")
def seed_env(rig: Rig) -> Iterator[dict[str, str]]:
    """Prod's runner as the Pulumi program sets it up: the rules file, the masking key's file and
    the seed's own KMS key (made in moto's KMS)."""
    rules_file = rig.tmp / "masking-rules.json"
    rules_file.write_text(json.dumps(audit_dataset.MASKING_RULES))
    key_file = rig.tmp / "masking-key"
    key_file.write_text(MASKING_KEY)
    kms = boto3.client("kms", endpoint_url=rig.s3_endpoint, region_name="eu-west-1")
    key_arn = kms.create_key(Description="audit-x prod staging seed")["KeyMetadata"]["Arn"]
    yield {"SEED_RULES_FILE": str(rules_file), "SEED_KEY_FILE": str(key_file), "SEED_KMS_KEY_ID": key_arn}


def staging_env(bucket: str) -> dict[str, str]:
    return {"PGDATABASE": STAGING, "SEED_SOURCE_BUCKET": bucket, "SEED_SOURCE_DATABASE": DATABASE}


def originals(rig: Rig) -> list[str]:
    """Values of masked columns in prod: none may be in the seed."""
    with psycopg.connect(rig.dsn(), password=PASSWORD) as connection:
        return [
            value
            for (value,) in connection.execute(
                "SELECT email FROM users UNION ALL SELECT full_name FROM users "
                "UNION ALL SELECT name FROM organizations "
                "UNION ALL SELECT digest FROM api_tokens "
                "UNION ALL (SELECT host(ip) FROM audit_events WHERE ip IS NOT NULL LIMIT 2000) "
                "UNION ALL (SELECT user_agent FROM audit_events WHERE user_agent IS NOT NULL LIMIT 2000)"
            ).fetchall()
        ]


def as_sql_text(rig: Rig, dump: bytes, name: str) -> str:
    """The whole seed, every object and row, as SQL text (pg_restore to a file): what is scanned."""
    path = rig.tmp / name
    path.write_bytes(dump)
    return subprocess.run(
        [str(postgres_bindir() / "pg_restore"), "--file=-", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout


def seed_keys(rig: Rig, bucket: str) -> list[str]:
    return rig.keys(bucket, staging_seed.seed_prefix(DATABASE))


@pytest.fixture(scope="module")
def produced(rig: Rig, seed_env: dict[str, str]) -> Iterator[tuple[str, dict]]:
    """A backup, then `seed` (the drill and the seed) with prod's database refusing every
    connection after the backup: the seed is made from the drill's copy alone."""
    bucket = rig.new_bucket(object_lock=True)
    assert run(rig, bucket, "postgres", BACKUP_LOCK_MODE="GOVERNANCE") == 0
    rig.pg.psql(f"ALTER DATABASE {DATABASE} WITH ALLOW_CONNECTIONS false")
    try:
        assert run(rig, bucket, "seed", BACKUP_LOCK_MODE="GOVERNANCE", env=seed_env) == 0
    finally:
        rig.pg.psql(f"ALTER DATABASE {DATABASE} WITH ALLOW_CONNECTIONS true")
    manifest_key = next(k for k in seed_keys(rig, bucket) if k.endswith(".manifest.json"))
    yield bucket, json.loads(rig.s3().get_object(Bucket=bucket, Key=manifest_key)["Body"].read())


def test_the_seed_keeps_rows_and_schema_and_carries_no_original_value(
    rig: Rig, produced: tuple[str, dict], seed_env: dict[str, str]
) -> None:
    bucket, manifest = produced
    backup_manifest_key = next(k for k in rig.keys(bucket, "daily/") if k.endswith(".manifest.json"))
    backup = json.loads(rig.s3().get_object(Bucket=bucket, Key=backup_manifest_key)["Body"].read())
    assert seed_keys(rig, bucket) == [
        f"staging-seed/postgres/{DATABASE}/2026-11-25T020000Z.{s}" for s in ("dump", "manifest.json")
    ]
    assert manifest["row_counts"] == backup["row_counts"]  # every row of every table
    assert manifest["source_backup"] == backup["key"] and manifest["latest_migration"] == "20250216120000"
    assert manifest["masked_rows"]["users"] == 2000 and manifest["masked_rows"]["audit_events"] == rig.count(
        "audit_events"
    )
    masked_columns = [
        c
        for t in seed.parse_rules(audit_dataset.MASKING_RULES).values()
        for c in t.values()
        if c.method in seed.MASKING
    ]
    assert manifest["leak_check"] == {
        "columns": len(masked_columns),
        "values_sampled": manifest["leak_check"]["values_sampled"],
        "survivors": 0,
    }
    assert manifest["leak_check"]["values_sampled"] > 1000
    head = rig.s3().head_object(Bucket=bucket, Key=manifest["key"])
    # The seed's own KMS key, the one staging may decrypt with; no bucket key (its context is the object).
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == seed_env["SEED_KMS_KEY_ID"]
    assert "ObjectLockMode" not in head  # not a backup: no lock, replaced weekly
    dump = rig.s3().get_object(Bucket=bucket, Key=manifest["key"])["Body"].read()
    text = as_sql_text(rig, dump, "seed.dump")
    # Foreign keys and unique constraints are in the seed, as in prod.
    assert "FOREIGN KEY (user_id) REFERENCES public.users(id)" in text and "UNIQUE (email)" in text
    assert "user-" in text and "@example.invalid" in text
    values = originals(rig)
    assert len(values) > 6000
    assert [value for value in values if value in text] == []  # scanned: every byte of the seed
    assert metric_lines(rig, "staging-seed", "success") and metric_lines(rig, "verify", "success")
    assert any(
        "audit_x_seed,environment=test,role=produced,table=public.users rows=2000i" in line for line in rig.influx.lines
    )


def test_a_column_no_rule_names_fails_the_seed_with_its_name_and_writes_none(
    rig: Rig, seed_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = rig.new_bucket()
    with psycopg.connect(rig.dsn(), password=PASSWORD, autocommit=True) as connection:
        connection.execute("ALTER TABLE users ADD COLUMN phone_number text DEFAULT '+44 20 7946 0000'")
        try:
            assert run(rig, bucket, "postgres") == 0
        finally:
            connection.execute("ALTER TABLE users DROP COLUMN phone_number")
    assert run(rig, bucket, "seed", env=seed_env) == 1
    assert "no masking rule for users.phone_number" in capsys.readouterr().err
    assert seed_keys(rig, bucket) == []
    assert metric_lines(rig, "staging-seed", "failure")


def test_a_failed_drill_is_a_failed_seed_too(rig: Rig, seed_env: dict[str, str]) -> None:
    bucket = rig.new_bucket()
    before = len(metric_lines(rig, "staging-seed", "failure"))
    assert run(rig, bucket, "seed", env=seed_env) == 1  # no backup to drill
    assert len(metric_lines(rig, "staging-seed", "failure")) == before + 1


def staging_database(rig: Rig) -> None:
    rig.pg.psql(f"DROP DATABASE IF EXISTS {STAGING} WITH (FORCE)")
    rig.pg.psql(f"DROP DATABASE IF EXISTS {staging_seed.previous_name(STAGING)} WITH (FORCE)")
    rig.create_database(STAGING)
    rig.pg.psql("CREATE TABLE fixtures (note text); INSERT INTO fixtures VALUES ('hand-made')", database=STAGING)


def test_staging_loads_the_seed_and_the_apps_queries_return_rows(rig: Rig, produced: tuple[str, dict]) -> None:
    bucket, manifest = produced
    staging_database(rig)
    app = psycopg.connect(rig.dsn(STAGING), password=PASSWORD, autocommit=True)  # the app, not stopped
    later = DAY.replace(day=27)
    assert run(rig, "unused", "seed-load", now=later, env=staging_env(bucket)) == 0
    assert app.closed or app.broken or _disconnected(app)
    with psycopg.connect(rig.dsn(STAGING), password=PASSWORD) as staging:
        for name, query in SAMPLE_QUERIES.items():
            assert staging.execute(query).fetchall(), name
        assert staging.execute("SELECT count(*) FROM users WHERE email LIKE 'user-%@example.invalid'").fetchone() == (
            2000,
        )
        assert staging_seed.loaded_seed(staging, STAGING) == {
            "seed": manifest["key"],
            "taken_at": "2026-11-25T02:00:00+00:00",
            "source_backup": manifest["source_backup"],
            "row_counts": manifest["row_counts"],
        }
    previous = staging_seed.previous_name(STAGING)
    assert rig.pg.psql("SELECT note FROM fixtures", database=previous).strip() == "hand-made"
    assert metric_lines(rig, "seed-load", "success")
    age = [line for line in rig.influx.lines if line.startswith("audit_x_seed,environment=test,role=running ")]
    assert age and "seed_age_s=172800.0" in age[-1]  # loaded two days after prod made it
    # Undo: the data from before is back under the live name, and it is no seed.
    assert run(rig, "unused", "seed-load", "--undo", now=later, env=staging_env(bucket)) == 0
    assert rig.pg.psql("SELECT note FROM fixtures", database=STAGING).strip() == "hand-made"
    age = [line for line in rig.influx.lines if line.startswith("audit_x_seed,environment=test,role=running ")]
    assert "seed_age_s=-1.0" in age[-1]


def _disconnected(connection: psycopg.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_seed_whose_bytes_changed_is_not_loaded_and_staging_keeps_its_data(
    rig: Rig, produced: tuple[str, dict], tmp_path: Path
) -> None:
    bucket, manifest = produced
    staging_database(rig)
    copy = rig.new_bucket()
    body = bytearray(rig.s3().get_object(Bucket=bucket, Key=manifest["key"])["Body"].read())
    body[len(body) // 2] ^= 0xFF
    rig.s3().put_object(Bucket=copy, Key=manifest["key"], Body=bytes(body))
    rig.s3().put_object(Bucket=copy, Key=manifest["key"].replace(".dump", ".manifest.json"), Body=json.dumps(manifest))
    assert run(rig, "unused", "seed-load", env=staging_env(copy)) == 1
    assert rig.pg.psql("SELECT note FROM fixtures", database=STAGING).strip() == "hand-made"
    assert rig.pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{STAGING}_seed'").strip() == "0"
    assert metric_lines(rig, "seed-load", "failure")


# --- ops/seed_load.py: the whole load, the app stopped, the migrations run -------------------

MIGRATION = (
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS locale text; "
    "INSERT INTO schema_migrations VALUES ('20261120120000') ON CONFLICT DO NOTHING"
)


@dataclass
class RigHost:
    """The Docker host as ops.seed_load sees it, over the rig: the runner's commands are the
    real `runner.cli.main` on staging's database; the migration job runs a real migration."""

    rig: Rig
    bucket: str
    migration_exit_code: int = 0
    running: set[str] = field(default_factory=lambda: {"web-0", "worker-sidekiq-0"})
    calls: list[str] = field(default_factory=list)

    def containers(self, labels: dict[str, str], *, running: bool) -> list[str]:
        role = labels.get(label("role"))
        if labels.get(label("service")) == "backup":
            return ["backup"]
        if role == "migrate":
            return ["migrate"]
        return sorted(self.running) if running else sorted(self.running | {"migrate"})

    def exec_json(self, container: str, argv: Sequence[str]) -> dict[str, Any]:
        assert container == "backup" and list(argv[:3]) == ["python", "-m", "runner"]
        self.calls.append(" ".join(argv[3:]))
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = run(self.rig, "unused", *argv[3:], now=DAY.replace(day=27), env=staging_env(self.bucket))
        if code != 0:
            raise SeedLoadError(f"{argv[3:]} exited {code}")
        return json.loads(output.getvalue())

    def stop(self, names: Sequence[str]) -> None:
        self.calls.append(f"stop {' '.join(names)}")
        self.running -= set(names)

    def start(self, names: Sequence[str]) -> None:
        self.calls.append(f"start {' '.join(names)}")
        self.running |= set(names)

    def run_to_completion(self, name: str) -> int:
        self.calls.append(f"run {name}")
        assert not self.running, "the migrations run with the app stopped"
        if self.migration_exit_code == 0:
            self.rig.pg.psql(MIGRATION, database=STAGING)
        return self.migration_exit_code

    def healthy(self, name: str) -> bool | None:
        return name in self.running


def test_the_load_stops_the_app_swaps_migrates_and_starts_it_again(rig: Rig, produced: tuple[str, dict]) -> None:
    bucket, manifest = produced
    staging_database(rig)
    host = RigHost(rig, bucket)
    result = SeedLoad(host, "test", report=lambda _: None).load(None)
    assert result["seed"] == manifest["key"]
    assert host.calls == [
        "seed-load --stage",
        "stop web-0 worker-sidekiq-0",
        "seed-load --swap",
        "run migrate",
        "start web-0 worker-sidekiq-0",
    ]
    assert host.running == {"web-0", "worker-sidekiq-0"}
    # Rows per table of the seed loaded, written when it became the live database.
    at = int(DAY.replace(day=27).timestamp())
    assert f"audit_x_seed,environment=test,role=loaded,table=public.users rows=2000i {at}" in rig.influx.lines
    with psycopg.connect(rig.dsn(STAGING), password=PASSWORD) as staging:
        assert staging.execute("SELECT max(version) FROM schema_migrations").fetchone() == ("20261120120000",)
        for name, query in SAMPLE_QUERIES.items():
            assert staging.execute(query).fetchall(), name


def test_a_failed_migration_puts_staging_back_on_its_data_and_the_app_back_up(
    rig: Rig, produced: tuple[str, dict]
) -> None:
    bucket, _ = produced
    staging_database(rig)
    host = RigHost(rig, bucket, migration_exit_code=1)
    with pytest.raises(
        SeedLoadError, match=r"the migrations \(migrate\) exited with 1 on the seed; staging was put back"
    ):
        SeedLoad(host, "test", report=lambda _: None).load(None)
    assert host.calls[-2:] == ["seed-load --undo", "start web-0 worker-sidekiq-0"]
    assert host.running == {"web-0", "worker-sidekiq-0"}
    assert rig.pg.psql("SELECT note FROM fixtures", database=STAGING).strip() == "hand-made"


class ClockRanOutError(Exception):
    pass


def serve_until(rig: Rig, env: dict[str, str], start: datetime, end: datetime) -> None:
    """The runner's scheduler (`serve`) on a fake clock from `start` until `end`."""
    now = [start]

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)
        if now[0] > end:
            raise ClockRanOutError

    config = runner_config.load(env)
    with pytest.raises(ClockRanOutError):
        serve(
            config,
            make_store(config, "postgres"),
            make_store(config, "verify"),
            lambda: now[0],
            sleep=sleep,
            seed_store=make_seed_store(config),
        )


def test_prods_scheduler_makes_the_seed_right_after_sundays_drill(rig: Rig, seed_env: dict[str, str]) -> None:
    bucket = rig.new_bucket()
    env = {**rig.env, **seed_env, "BACKUP_BUCKET": bucket, "BACKUP_STATE_DIR": str(rig.tmp / f"state-{bucket}")}
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    serve_until(rig, env, saturday_noon, datetime(2026, 11, 29, 5, 0, tzinfo=UTC))
    assert [k.rsplit("/", 1)[1] for k in seed_keys(rig, bucket)] == [
        "2026-11-29T040000Z.dump",  # Sunday 04:00, the drill's time (backup.verifySchedule)
        "2026-11-29T040000Z.manifest.json",
    ]
    sunday_4am = int(datetime(2026, 11, 29, 4, 0, tzinfo=UTC).timestamp())
    assert [line for line in metric_lines(rig, "staging-seed", "success") if line.endswith(f" {sunday_4am}")]


def test_stagings_scheduler_reports_the_age_of_its_data_every_ten_minutes(rig: Rig, produced: tuple[str, dict]) -> None:
    bucket, _ = produced
    staging_database(rig)
    own = rig.new_bucket()
    env = {**rig.env, **staging_env(bucket), "BACKUP_BUCKET": own, "BACKUP_STATE_DIR": str(rig.tmp / "state-staging")}
    state.record_success(
        Path(env["BACKUP_STATE_DIR"]),
        staging_seed.LOAD_KIND,
        DAY,
        {"seed": "staging-seed/postgres/audit_x_test/2026-11-25T020000Z.dump", "taken_at": DAY.isoformat()},
    )
    start = DAY + timedelta(days=3)
    serve_until(rig, env, start, start + timedelta(minutes=25))
    ages = [
        line
        for line in rig.influx.lines
        if line.startswith("audit_x_seed,environment=test,role=running ")
        and start.timestamp() <= int(line.rsplit(" ", 1)[1]) <= (start + timedelta(minutes=25)).timestamp()
    ]
    # At start, then every SEED_AGE_INTERVAL_SECONDS: three days old, and older by the minute.
    assert [line.split(" ")[1] for line in ages][:3] == [
        "seed_age_s=259200.0",
        "seed_age_s=259800.0",
        "seed_age_s=260400.0",
    ]
