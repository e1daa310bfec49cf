"""The canary release driver (ops/canary.py) and its rules (ops/canary_rules.py): decisions
on recorded metric series, the sequence of updates against a stand-in for Pulumi's Automation
API (including an abort mid-way and a resume), and the Flux queries it runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from components.settings import CanaryPolicy, load_settings
from harness.mock_engine import Plan, load_stack_config
from ops.canary import Driver, Outcome, frames_to_rows
from ops.canary_rules import TrackStats, judge, latency_query, requests_query, track_stats
from tests.helpers import flux_valid, unknown_references, written_metrics

POLICY = CanaryPolicy()
STABLE, CANARY = "web-stable@file", "web-canary@file"
NEW = "ghcr.io/audit-x/audit_x:1.5.0"
OLD = "ghcr.io/audit-x/audit_x:1.4.2"


def window(stable: tuple[int, int, float], canary: tuple[int, int, float]) -> tuple[list[dict], list[dict]]:
    """One interval as the two queries return it: (requests, 5xx, p99 seconds) per version, the
    requests split over codes 200/302/500/503 the way the edge's counters are labelled."""
    requests, latencies = [], []
    for service, (total, errors, p99) in ((STABLE, stable), (CANARY, canary)):
        ok = total - errors
        requests += [
            {"service": service, "code": "200", "_value": float(ok - ok // 10)},
            {"service": service, "code": "302", "_value": float(ok // 10)},
            {"service": service, "code": "500", "_value": float(errors - errors // 3)},
            {"service": service, "code": "503", "_value": float(errors // 3)},
        ]
        latencies.append({"service": service, "_value": p99 if total else float("nan")})
    return requests, latencies


RECORDED = {
    "healthy": window((9500, 12, 0.180), (500, 1, 0.190)),
    "5xx burst": window((9500, 12, 0.180), (500, 40, 0.185)),
    "slow at p99": window((9500, 12, 0.180), (500, 1, 0.260)),
    "too little traffic": window((9900, 12, 0.180), (60, 0, 0.170)),
    "stable degrading": window((9500, 570, 0.400), (500, 35, 0.410)),
}


def stats(case: str) -> dict[str, TrackStats]:
    return track_stats(*RECORDED[case])


@pytest.mark.parametrize(
    ("case", "decision", "check", "phrase"),
    [
        ("healthy", "advance", "ok", "within thresholds"),
        ("5xx burst", "abort", "5xx ratio", "5xx ratio 8.00% > allowed 1.00% (max(1%, 2 x stable 0.13%))"),
        ("slow at p99", "abort", "p99 latency", "p99 260 ms > 1.2 x stable 180 ms = 216 ms"),
        ("too little traffic", "wait", "traffic", "too little traffic to judge: 60 canary requests < 200"),
        ("stable degrading", "advance", "ok", "stable itself is failing (6.00% 5xx), the threshold follows it"),
    ],
)
def test_each_recorded_series_gets_its_decision_and_report(case: str, decision: str, check: str, phrase: str) -> None:
    figures = stats(case)
    judgement = judge(POLICY, figures["stable"], figures["canary"], waits=0)
    assert (judgement.decision, judgement.check) == (decision, check)
    assert phrase in judgement.report


def test_too_little_traffic_aborts_once_the_waits_are_spent() -> None:
    figures = stats("too little traffic")
    judgement = judge(POLICY, figures["stable"], figures["canary"], waits=POLICY.max_waits)
    assert (judgement.decision, judgement.check) == ("abort", "traffic")
    assert "after 2 extra intervals" in judgement.report


def test_the_stats_add_up_the_edges_counters() -> None:
    figures = stats("5xx burst")
    assert figures["canary"] == TrackStats(500, 40, 0.185)
    assert figures["stable"].requests == 9500 and figures["stable"].errors == 12
    assert track_stats(*window((10, 0, 0.1), (0, 0, 0.1)))["canary"] == TrackStats(0, 0, None)  # NaN: no traffic


# --- the queries ---------------------------------------------------------------------------------


def test_the_queries_pass_fluxs_checker_and_read_what_the_collector_writes(plans: dict[str, Plan]) -> None:
    queries = [requests_query("prod", 300), latency_query("prod", 300)]
    assert flux_valid(queries) == [True, True]
    written = written_metrics(plans["prod"], "prod")
    assert [unknown_references(q, written) for q in queries] == [[], []]
    assert unknown_references(requests_query("prod", 300).replace("traefik", "traefic"), written)


def test_grafanas_frames_become_rows() -> None:
    document = {
        "results": {
            "A": {
                "frames": [
                    {
                        "schema": {"fields": [{"name": "_value", "labels": {"service": CANARY, "code": "500"}}]},
                        "data": {"values": [[17.0]]},
                    },
                    {
                        "schema": {"fields": [{"name": "_time"}, {"name": "_value", "labels": {"service": STABLE}}]},
                        "data": {"values": [[1, 2], [0.2, 0.25]]},
                    },
                ]
            }
        }
    }
    assert frames_to_rows(document) == [
        {"service": CANARY, "code": "500", "_value": 17.0},
        {"service": STABLE, "_value": 0.25},
    ]


# --- the driver, against stand-ins --------------------------------------------------------------


class RecordingStack:
    """Pulumi's Automation API as the driver uses it: records every `up` and its app config."""

    def __init__(self, release: dict[str, Any] | None, fail_on: int | None = None) -> None:
        self.deployed = release
        self.ups: list[dict[str, Any]] = []
        self.fail_on = fail_on

    def release(self) -> dict[str, Any] | None:
        return self.deployed

    def up(self, app: Mapping[str, Any], message: str) -> None:
        if self.fail_on is not None and len(self.ups) == self.fail_on:
            raise RuntimeError("the update failed")
        self.ups.append({"image": app["image"], "canary": app.get("canary"), "message": message})
        self.deployed = {"image": app["image"], "canary": app.get("canary")}


class Replay:
    """Metrics that play recorded windows, one per judged interval."""

    def __init__(self, cases: list[str]) -> None:
        self.windows = [RECORDED[case] for case in cases]
        self.queries: list[str] = []

    def query(self, flux: str) -> list[dict[str, Any]]:
        self.queries.append(flux)
        requests, latencies = self.windows[0]
        if "histogramQuantile" in flux:
            self.windows.pop(0)
            return latencies
        return requests


def driver(
    stack: RecordingStack, metrics: Replay, smoke_status: int = 200
) -> tuple[Driver, list[str], list[tuple[str, dict]]]:
    settings = load_settings(load_stack_config("prod"))
    said: list[str] = []
    smoked: list[tuple[str, dict]] = []

    def smoke(url: str, headers: Mapping[str, str]) -> int:
        smoked.append((url, dict(headers)))
        return smoke_status

    app = json.loads(load_stack_config("prod")["audit-x:app"]) | {"image": NEW}
    return (
        Driver("prod", stack, metrics, app=app, settings=settings.app, environment="prod",
               app_url="https://audit-x.example.com", smoke=smoke, sleep=lambda _: None, say=said.append),
        said,
        smoked,
    )  # fmt: skip


def canaries(stack: RecordingStack) -> list[tuple[str, int | None]]:
    return [(up["image"], up["canary"]["weight"] if up["canary"] else None) for up in stack.ups]


def test_a_healthy_canary_is_stepped_and_promoted() -> None:
    stack = RecordingStack({"image": OLD, "canary": None})
    run, said, smoked = driver(stack, Replay(["healthy"] * 3))
    outcome = run.release(NEW)
    assert outcome.promoted
    assert canaries(stack) == [(OLD, 0), (OLD, 5), (OLD, 25), (OLD, 50), (NEW, None)]
    assert all(up["canary"] is None or up["canary"]["image"] == NEW for up in stack.ups)
    assert smoked == [("https://audit-x.example.com/health", {"X-Canary": "1"})]
    assert [(s.weight, s.decision) for s in outcome.steps] == [
        (0, "advance"),
        (5, "advance"),
        (25, "advance"),
        (50, "advance"),
    ]
    assert said[-1].startswith("promoted ghcr.io/audit-x/audit_x:1.5.0")


def test_a_5xx_burst_mid_way_aborts_and_the_stable_version_never_stops() -> None:
    stack = RecordingStack({"image": OLD, "canary": None})
    run, said, _ = driver(stack, Replay(["healthy", "5xx burst"]))
    outcome = run.release(NEW)
    assert not outcome.promoted and outcome.failed_check == "5xx ratio"
    # Up to 25 %, then the canary removed in one update; every update kept the stable image.
    assert canaries(stack) == [(OLD, 0), (OLD, 5), (OLD, 25), (OLD, None)]
    assert stack.ups[-1]["message"] == "canary removed: aborted on 5xx ratio"
    assert any(line.startswith("ABORT (5xx ratio): 5xx ratio 8.00% > allowed 1.00%") for line in said)
    summary = outcome.summary("prod", NEW)
    assert "aborted (5xx ratio)" in summary and "| 25 % | abort | 500 | 8.00% | 185 ms | 0.13% | 180 ms |" in summary


def test_a_quiet_step_waits_then_aborts() -> None:
    stack = RecordingStack({"image": OLD, "canary": None})
    run, _, _ = driver(stack, Replay(["too little traffic"] * 3))
    outcome = run.release(NEW)
    assert outcome.failed_check == "traffic"
    assert [s.decision for s in outcome.steps] == ["advance", "wait", "wait", "abort"]
    assert canaries(stack) == [(OLD, 0), (OLD, 5), (OLD, None)]


def test_a_failed_smoke_test_aborts_before_any_user_sees_the_canary() -> None:
    stack = RecordingStack({"image": OLD, "canary": None})
    run, _, _ = driver(stack, Replay([]), smoke_status=502)
    outcome = run.release(NEW)
    assert outcome.failed_check == "smoke test"
    assert canaries(stack) == [(OLD, 0), (OLD, None)]
    assert outcome.steps[0].report == "smoke test: /health answered 502 through the edge with X-Canary: 1"


def test_a_stopped_release_resumes_where_the_stack_is() -> None:
    # The first run stopped (the runner died) after the 25 % update: the stack says so.
    stack = RecordingStack({"image": OLD, "canary": {"image": NEW, "weight": 25, "replicas": 1}})
    run, said, smoked = driver(stack, Replay(["healthy"]))
    outcome = run.release(NEW)
    assert outcome.promoted
    assert said[0] == "resuming the canary of ghcr.io/audit-x/audit_x:1.5.0 at 25 %"
    assert canaries(stack) == [(OLD, 50), (NEW, None)]
    assert smoked == []  # smoke-tested before it took traffic, in the first run


def test_an_abort_by_hand_removes_the_canary_and_keeps_the_stable_version() -> None:
    stack = RecordingStack({"image": OLD, "canary": {"image": NEW, "weight": 5, "replicas": 1}})
    run, _, _ = driver(stack, Replay([]))
    run.abort()
    assert canaries(stack) == [(OLD, None)]
    assert stack.ups[0]["message"] == "canary removed: aborted by hand"
    run.abort()  # nothing left to abort: no update
    assert len(stack.ups) == 1


def test_another_canary_in_progress_is_not_overridden() -> None:
    from ops.canary import CanaryError  # noqa: PLC0415

    stack = RecordingStack({"image": OLD, "canary": {"image": "ghcr.io/audit-x/audit_x:1.4.9", "weight": 5}})
    run, _, _ = driver(stack, Replay([]))
    with pytest.raises(CanaryError, match=r"a canary of ghcr.io/audit-x/audit_x:1.4.9 is in progress on prod"):
        run.release(NEW)
    assert stack.ups == []


def test_the_image_already_stable_is_a_plain_update() -> None:
    stack = RecordingStack({"image": NEW, "canary": None})
    run, _, _ = driver(stack, Replay([]))
    assert run.release(NEW) == Outcome(promoted=True)
    assert canaries(stack) == [(NEW, None)]


def test_a_failed_update_mid_release_stops_the_driver_with_the_stack_as_it_is() -> None:
    stack = RecordingStack({"image": OLD, "canary": None}, fail_on=2)  # the 25 % update fails
    run, _, _ = driver(stack, Replay(["healthy"] * 3))
    with pytest.raises(RuntimeError, match="the update failed"):
        run.release(NEW)
    assert stack.deployed == {"image": OLD, "canary": {"image": NEW, "weight": 5}}  # resumable from 5 %
