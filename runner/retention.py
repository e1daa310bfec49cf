"""How long each copy is kept: by count, held by S3 Object Lock.

A tier keeps its newest N copies (7 daily, 4 weekly, 12 monthly, from config). Every copy is
written locked until `taken_at + N periods`, which is exactly when N newer copies exist if every
run succeeds. When runs fail, no newer copy comes, so each run (failed or not) extends the lock
of the copy ranked k (0 = newest) to at least `now + (N - k) periods`: the newest N copies never
run out while newer ones are missing, and if the runner stops altogether they still last their
count of periods from its last run.

A copy leaves only when it is past the newest N and its lock has run out: `release`, run off the
host by an identity that may tag, then tags it (storage.RELEASE_TAG), and the bucket's lifecycle
rule expires tagged objects; the runner on the host only names it (its writer may not tag). Nothing but
the runner's count releases a copy; no age-based rule can hide the newest ones.

Everything that decides is pure (`decide`), and takes the clock as an argument.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from runner import layout
from runner.layout import BackupKey
from runner.storage import BackupStore, Lock

log = logging.getLogger("backup.retention")

LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")


@dataclass(frozen=True)
class RetentionPolicy:
    """Copies per tier, and the Object Lock mode (None: the bucket has no Object Lock)."""

    copies: dict[str, int]
    mode: str | None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in LOCK_MODES:
            raise ValueError(f"lock mode {self.mode!r}: expected one of {', '.join(LOCK_MODES)}")
        if set(self.copies) != set(layout.TIERS) or min(self.copies.values()) < 1:
            raise ValueError(f"copies {self.copies!r}: expected at least 1 for each of {', '.join(layout.TIERS)}")

    def period(self, tier: str) -> timedelta:
        return timedelta(days=layout.PERIOD_DAYS[tier])

    def natural_end(self, tier: str, taken_at: datetime) -> datetime:
        """When N newer copies exist, if every run succeeds."""
        return taken_at + self.copies[tier] * self.period(tier)

    def required_end(self, tier: str, rank: int, taken_at: datetime, now: datetime) -> datetime:
        """The earliest a copy of `rank` (0 = newest) may run out, seen from `now`."""
        left = self.copies[tier] - rank
        return max(self.natural_end(tier, taken_at), now + left * self.period(tier))

    def lock(self, tier: str, taken_at: datetime) -> Lock | None:
        """The lock a new copy is written with."""
        return Lock(self.mode, self.natural_end(tier, taken_at)) if self.mode else None


@dataclass(frozen=True)
class Held:
    """A complete copy in a tier, and when its lock runs out (None: not locked)."""

    key: BackupKey
    locked_until: datetime | None


@dataclass
class Decision:
    extend: list[tuple[BackupKey, datetime]] = field(default_factory=list)
    release: list[BackupKey] = field(default_factory=list)


def decide(policy: RetentionPolicy, tier: str, held: Iterable[Held], now: datetime) -> Decision:
    """What to do with a tier's copies: extend the newest N's locks, release the rest once free."""
    decision = Decision()
    newest_first = sorted(held, key=lambda h: h.key.stamp, reverse=True)
    for rank, copy in enumerate(newest_first):
        taken_at = copy.key.taken_at
        if rank < policy.copies[tier]:
            required = policy.required_end(tier, rank, taken_at, now)
            if policy.mode and (copy.locked_until is None or copy.locked_until < required):
                decision.extend.append((copy.key, required))
            continue
        # Past the count: free once its lock (or, unlocked, its natural end) has passed.
        end = copy.locked_until or policy.natural_end(tier, taken_at)
        if end <= now:
            decision.release.append(copy.key)
    return decision


def enforce(
    store: BackupStore,
    policy: RetentionPolicy,
    *,
    kind: str,
    name: str,
    extension: str,
    now: datetime,
    release_with: BackupStore | None = None,
) -> dict[str, Decision]:
    """Apply `decide` to every tier of one backup kind; returns what was done, per tier. Copies
    past their count are released only `release_with` a store whose identity may tag them: the
    writer on the host may not (it could hide the newest copies), so there they are only named,
    for `python -m runner release` off the host."""
    done: dict[str, Decision] = {}
    for tier in layout.TIERS:
        keys = [
            layout.key_from_manifest(manifest, extension)
            for manifest in store.manifest_keys(layout.tier_prefix(tier, kind, name))
        ]
        held = [Held(key, store.locked_until(key.manifest)) for key in keys]
        decision = decide(policy, tier, held, now)
        for key, until in decision.extend:
            assert policy.mode is not None  # decide extends only locked copies
            for object_key in (key.data, key.manifest):
                store.extend_lock(object_key, Lock(policy.mode, until))
            log.info("kept %s locked until %s: no newer copy has taken its place", key.data, until.isoformat())
        for key in decision.release:
            if release_with is None:
                log.info("%s is past its count and its lock: `python -m runner release` frees it", key.data)
                continue
            # The manifest first: a copy without its manifest is ignored, never half-restored.
            release_with.release(key.manifest)
            release_with.release(key.data)
            log.info("released %s: %d newer copies hold the tier", key.data, policy.copies[tier])
        done[tier] = decision
    return done
