"""Where backups live in the bucket, and which copies a run makes (grandfather-father-son).

    daily/<kind>/<name>/<stamp>.<ext>            every run
    daily/<kind>/<name>/<stamp>.manifest.json    written last: a backup without one is incomplete
    weekly/...  monthly/...                      server-side copies of the first run of an ISO
                                                 week / a month, same names

How long each copy is kept (7 daily, 4 weekly, 12 monthly, by count) is runner/retention.py's.
Everything here is pure and takes the clock as an argument, so week and month boundaries are
tested without waiting for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

TIERS = ("daily", "weekly", "monthly")
# Staging's masked copies of prod (runner/seed.py), outside the tiers: no lock, no promotion,
# and the only prefix staging's seed reader may read (components/backups/runner.py).
SEED_TIER = "staging-seed"
# A tier's period: one copy is made per period. Months count as 31 days, so a short month never
# cuts the time a monthly copy is kept below its count.
PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31}
STAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"
MANIFEST_SUFFIX = ".manifest.json"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class BackupKey:
    """One backup's object and manifest keys in one tier."""

    tier: str
    kind: str
    name: str
    stamp: str
    extension: str

    @property
    def prefix(self) -> str:
        return f"{self.tier}/{self.kind}/{self.name}/"

    @property
    def data(self) -> str:
        return f"{self.prefix}{self.stamp}.{self.extension}"

    @property
    def manifest(self) -> str:
        return f"{self.prefix}{self.stamp}{MANIFEST_SUFFIX}"

    def in_tier(self, tier: str) -> BackupKey:
        return BackupKey(tier, self.kind, self.name, self.stamp, self.extension)

    @property
    def taken_at(self) -> datetime:
        return parse_stamp(self.stamp)


def tier_prefix(tier: str, kind: str, name: str) -> str:
    return f"{tier}/{kind}/{name}/"


def key_from_manifest(manifest_key: str, extension: str) -> BackupKey:
    """`daily/postgres/audit_x_prod/2026-11-28T020000Z.manifest.json` -> its BackupKey."""
    tier, kind, name, filename = manifest_key.split("/", 3)
    if tier not in (*TIERS, SEED_TIER) or not filename.endswith(MANIFEST_SUFFIX):
        raise ValueError(f"not a manifest key: {manifest_key}")
    return BackupKey(tier, kind, name, filename.removesuffix(MANIFEST_SUFFIX), extension)


def same_iso_week(a: datetime, b: datetime) -> bool:
    return a.astimezone(UTC).isocalendar()[:2] == b.astimezone(UTC).isocalendar()[:2]


def same_month(a: datetime, b: datetime) -> bool:
    a, b = a.astimezone(UTC), b.astimezone(UTC)
    return (a.year, a.month) == (b.year, b.month)


def promotions(now: datetime, weekly_taken: Iterable[datetime], monthly_taken: Iterable[datetime]) -> list[str]:
    """The tiers besides `daily` that a backup taken `now` is copied to.

    The first backup of an ISO week goes to `weekly`, the first of a calendar month (UTC) to
    `monthly`: "first" meaning no complete backup of that period is there yet, so a failed
    first run of the week is made up by the next successful one.
    """
    tiers = []
    if not any(same_iso_week(now, taken) for taken in weekly_taken):
        tiers.append("weekly")
    if not any(same_month(now, taken) for taken in monthly_taken):
        tiers.append("monthly")
    return tiers
