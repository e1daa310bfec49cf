"""When a canary goes on, waits, or is rolled back: Flagger's and Argo Rollouts' rules, judged on
the edge's own metrics (components/platform/edge.py) as the collector stores them in InfluxDB.

Each step compares the canary with the stable version over the same window:

- too little canary traffic to judge (fewer than `minRequests`): wait another interval, at most
  `maxWaits` times, then abort: a canary nobody used proved nothing;
- 5xx ratio above max(`maxErrorRatio`, `errorRatioFactor` x stable's): abort;
- p99 latency above `latencyFactor` x stable's: abort;
- otherwise advance. When the stable version itself is failing, the error threshold moves with it
  (the canary is judged for being worse, not for sharing a bad day), and the report says so.

Pure: the figures come in, a decision and its report come out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from components.observability.collector import EDGE_MEASUREMENT
from components.platform.edge import CANARY_SERVICE, STABLE_SERVICE
from components.settings import CanaryPolicy

REQUESTS_FIELD = "traefik_service_requests_total"
BUCKETS_FIELD = "traefik_service_request_duration_seconds_bucket"
# How Traefik labels a service of the file provider.
SERVICE_LABEL = {"stable": f"{STABLE_SERVICE}@file", "canary": f"{CANARY_SERVICE}@file"}

Decision = Literal["advance", "wait", "abort"]


@dataclass(frozen=True)
class TrackStats:
    """One version's traffic over a window: requests, of them 5xx, and the p99 latency."""

    requests: int
    errors: int
    p99_seconds: float | None

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p99 = f"{self.p99_seconds * 1000:.0f} ms" if self.p99_seconds is not None else "n/a"
        return f"{self.requests} requests, 5xx {self.error_ratio:.2%}, p99 {p99}"


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    check: str  # "ok", "traffic", "5xx ratio", "p99 latency"
    report: str


def judge(policy: CanaryPolicy, stable: TrackStats, canary: TrackStats, *, waits: int) -> Judgement:
    """The decision for one step, having already waited `waits` extra intervals on it."""
    figures = f"canary: {canary.describe()}; stable: {stable.describe()}"
    if canary.requests < policy.min_requests:
        why = f"too little traffic to judge: {canary.requests} canary requests < {policy.min_requests}"
        if waits < policy.max_waits:
            return Judgement("wait", "traffic", f"{why}; watching another interval ({figures})")
        return Judgement("abort", "traffic", f"{why} after {waits} extra intervals ({figures})")
    allowed = max(policy.max_error_ratio, policy.error_ratio_factor * stable.error_ratio)
    degrading = stable.error_ratio > policy.max_error_ratio
    note = f"; stable itself is failing ({stable.error_ratio:.2%} 5xx), the threshold follows it" if degrading else ""
    if canary.error_ratio > allowed:
        return Judgement(
            "abort",
            "5xx ratio",
            f"5xx ratio {canary.error_ratio:.2%} > allowed {allowed:.2%} (max({policy.max_error_ratio:.0%}, "
            f"{policy.error_ratio_factor:g} x stable {stable.error_ratio:.2%})){note} ({figures})",
        )
    if canary.p99_seconds is not None and stable.p99_seconds is not None:
        limit = policy.latency_factor * stable.p99_seconds
        if canary.p99_seconds > limit:
            return Judgement(
                "abort",
                "p99 latency",
                f"p99 {canary.p99_seconds * 1000:.0f} ms > {policy.latency_factor:g} x stable "
                f"{stable.p99_seconds * 1000:.0f} ms = {limit * 1000:.0f} ms{note} ({figures})",
            )
    return Judgement("advance", "ok", f"within thresholds{note} ({figures})")


# --- the Flux queries, and their results --------------------------------------------------------


def _services_filter(environment: str) -> str:
    services = " or ".join(f'r.service == "{label}"' for label in SERVICE_LABEL.values())
    return f'r.environment == "{environment}" and ({services})'


def requests_query(environment: str, window_seconds: int) -> str:
    """Requests per service and status code in the window (counters: last minus first)."""
    return "\n".join(
        [
            'from(bucket: "metrics")',
            f"  |> range(start: -{window_seconds}s)",
            f'  |> filter(fn: (r) => r._measurement == "{EDGE_MEASUREMENT}" and r._field == "{REQUESTS_FIELD}")',
            f"  |> filter(fn: (r) => {_services_filter(environment)})",
            '  |> group(columns: ["service", "code", "method", "protocol"])',
            '  |> sort(columns: ["_time"])',
            "  |> difference(nonNegative: true)",
            "  |> sum()",
            '  |> group(columns: ["service", "code"])',
            "  |> sum()",
        ]
    )


def latency_query(environment: str, window_seconds: int, quantile: float = 0.99) -> str:
    """Each service's latency quantile in the window, from the histogram's bucket counters."""
    return "\n".join(
        [
            'from(bucket: "metrics")',
            f"  |> range(start: -{window_seconds}s)",
            f'  |> filter(fn: (r) => r._measurement == "{EDGE_MEASUREMENT}" and r._field == "{BUCKETS_FIELD}")',
            f"  |> filter(fn: (r) => {_services_filter(environment)})",
            '  |> group(columns: ["service", "le", "code", "method", "protocol"])',
            '  |> sort(columns: ["_time"])',
            "  |> difference(nonNegative: true)",
            "  |> sum()",
            '  |> group(columns: ["service", "le"])',
            "  |> sum()",
            '  |> group(columns: ["service"])',
            "  |> map(fn: (r) => ({r with le: float(v: r.le)}))",
            f'  |> histogramQuantile(quantile: {quantile}, countColumn: "_value", upperBoundColumn: "le", '
            'valueColumn: "_value")',
        ]
    )


def track_stats(
    request_rows: Iterable[Mapping[str, Any]], latency_rows: Iterable[Mapping[str, Any]]
) -> dict[str, TrackStats]:
    """`stable` and `canary` figures from the two queries' rows (columns service, code, _value)."""
    by_label = {label: track for track, label in SERVICE_LABEL.items()}
    requests = dict.fromkeys(SERVICE_LABEL, 0)
    errors = dict.fromkeys(SERVICE_LABEL, 0)
    p99: dict[str, float | None] = dict.fromkeys(SERVICE_LABEL, None)
    for row in request_rows:
        track = by_label.get(str(row.get("service")))
        if track is None:
            continue
        count = round(float(row["_value"]))
        requests[track] += count
        if str(row.get("code", "")).startswith("5"):
            errors[track] += count
    for row in latency_rows:
        track = by_label.get(str(row.get("service")))
        value = row.get("_value")
        if track is not None and value is not None and float(value) == float(value):  # NaN: no requests
            p99[track] = float(value)
    return {track: TrackStats(requests[track], errors[track], p99[track]) for track in SERVICE_LABEL}
