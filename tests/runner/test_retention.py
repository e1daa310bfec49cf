"""Retention by count (runner/retention.py), decided with a fake clock over simulated months.

The simulation applies each decision the way S3 would: an extended lock moves later, a released
copy leaves the tier. What must hold, whatever the runs do: the newest N copies of a tier are
never released and never unlocked while no newer copy has taken their place.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runner.layout import BackupKey, stamp
from runner.retention import Held, RetentionPolicy, decide

START = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)
POLICY = RetentionPolicy(copies={"daily": 7, "weekly": 4, "monthly": 12}, mode="COMPLIANCE")


def daily_key(moment: datetime) -> BackupKey:
    return BackupKey("daily", "postgres", "audit_x", stamp(moment), "dump")


def simulate(days: int, succeeds: list[bool], policy: RetentionPolicy = POLICY) -> list[dict[BackupKey, datetime]]:
    """Run the daily tier for `days`; day i's backup succeeds when succeeds[i]. Returns the
    copies held (key -> lock end) after each day's run, which applies `decide` every day."""
    held: dict[BackupKey, datetime] = {}
    history = []
    for day in range(days):
        now = START + timedelta(days=day)
        if succeeds[day]:
            lock = policy.lock("daily", now)
            assert lock is not None
            held[daily_key(now)] = lock.until
        decision = decide(policy, "daily", [Held(k, until) for k, until in held.items()], now)
        for key, until in decision.extend:
            assert until > held[key], "a lock is only ever moved later"
            held[key] = until
        for key in decision.release:
            assert held[key] <= now, "released while still locked"
            del held[key]
        history.append(dict(held))
    return history


def test_when_every_run_succeeds_the_tier_holds_exactly_n_copies_and_no_lock_is_extended() -> None:
    history = simulate(40, [True] * 40)
    assert [len(h) for h in history[:7]] == [1, 2, 3, 4, 5, 6, 7]
    assert all(len(h) == 7 for h in history[7:])
    # Every copy is held exactly its natural span: locked at write, never extended.
    last = history[-1]
    for key, until in last.items():
        assert until == key.taken_at + timedelta(days=7)


def test_a_week_of_failed_runs_keeps_the_newest_seven_copies_locked_ahead() -> None:
    succeeds = [True] * 10 + [False] * 7
    history = simulate(17, succeeds)
    after_the_week = history[-1]
    now = START + timedelta(days=16)
    newest_first = sorted(after_the_week, key=lambda k: k.stamp, reverse=True)
    assert [k.taken_at for k in newest_first] == [START + timedelta(days=d) for d in range(9, 2, -1)]
    # Age-based expiry would have dropped every one of them (all are 7 to 13 days old); by count,
    # each still has (7 - rank) days for a newer copy to arrive.
    for rank, key in enumerate(newest_first):
        assert now - key.taken_at >= timedelta(days=7)
        assert after_the_week[key] == now + timedelta(days=7 - rank)


def test_when_backups_resume_the_extended_copies_leave_one_per_new_copy() -> None:
    succeeds = [True] * 10 + [False] * 7 + [True] * 10
    history = simulate(27, succeeds)
    assert [len(h) for h in history[10:17]] == [7] * 7  # the failed week
    assert all(len(h) == 7 for h in history[17:])  # each new copy replaces the oldest, once unlocked


def test_if_the_runner_stops_altogether_the_newest_copy_lasts_its_count_from_the_last_run() -> None:
    history = simulate(10, [True] * 10)
    held = history[-1]
    last_run = START + timedelta(days=9)
    assert max(held.values()) == last_run + timedelta(days=7)
    assert min(held.values()) == last_run + timedelta(days=1)


def test_without_object_lock_copies_are_released_by_count_alone() -> None:
    unlocked = RetentionPolicy(copies={"daily": 3, "weekly": 4, "monthly": 12}, mode=None)
    now = START + timedelta(days=10)
    held = [Held(daily_key(START + timedelta(days=d)), None) for d in range(11)]
    decision = decide(unlocked, "daily", held, now)
    assert decision.extend == []
    assert sorted(k.taken_at.day for k in decision.release) == list(range(1, 9))


@pytest.mark.parametrize(
    ("copies", "mode", "message"),
    [
        ({"daily": 7, "weekly": 4, "monthly": 12}, "LEGAL", "lock mode .LEGAL.: expected one of COMPLIANCE"),
        ({"daily": 0, "weekly": 4, "monthly": 12}, None, "expected at least 1 for each of daily, weekly, monthly"),
        ({"daily": 7, "weekly": 4}, None, "expected at least 1 for each of daily, weekly, monthly"),
    ],
)
def test_a_bad_policy_names_what_is_wrong(copies: dict[str, int], mode: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(copies=copies, mode=mode)
