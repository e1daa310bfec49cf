"""A canary release of the app, driven step by step: for the deploy pipeline and for a person.

    python -m ops.canary STACK [--image IMAGE]     start, or resume, a canary release
    python -m ops.canary STACK --abort             take the canary out; the stable version stays

1. The canary comes up at weight 0 beside the stable version (`app.canary` in the stack's config;
   its expand-only migrations run first), and is smoke-tested through the edge with `X-Canary: 1`.
2. For each weight of `app.canaryPolicy.steps` (5, 25, 50 %): the edge's weight is set (only the
   routes file changes), the step is watched for `intervalSeconds`, and the canary's 5xx ratio
   and p99 latency are compared with the stable version's (ops/canary_rules.py).
3. Promotion: the stable image becomes the canary's (web and workers roll, new-before-old), and
   the canary goes. On abort instead: weight back to 0 and the canary removed, in one update; the
   stable version never stopped. The report says which check failed, with the figures.

Every step is printed, and written to $GITHUB_STEP_SUMMARY when set. What runs is read back from
the stack's `release` output, so a run that stopped half-way resumes where the stack is: run the
same command again; `--abort` ends a release by hand.

The stack is driven through Pulumi's Automation API (`AutomationStack`); the metrics are read
through Grafana's query API (`GrafanaMetrics`, GRAFANA_URL and GRAFANA_TOKEN: a service account
token with the Viewer role), which reaches the environment's InfluxDB from anywhere the edge does.
Exit status: 0 promoted (or nothing to do), 1 aborted, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from components.observability.grafana import INFLUXDB_DATASOURCE_UID
from components.platform.edge import CANARY_HEADER
from components.settings import AppSettings, CanaryPolicy, ConfigError, load_settings
from harness.mock_engine import REPO_ROOT, load_stack_config, stack_names
from ops.canary_rules import TrackStats, judge, latency_query, requests_query, track_stats

APP_KEY = "audit-x:app"


class CanaryError(RuntimeError):
    """A release that cannot go on: the message says why and what was done about it."""


class Stack(Protocol):
    """What the driver needs of a stack (Pulumi's Automation API, or a stand-in in the tests)."""

    def release(self) -> dict[str, Any] | None:
        """The `release` output of the last update: {"image", "canary": {"image", "weight"} | None}."""
        ...

    def up(self, app: Mapping[str, Any], message: str) -> None:
        """Set `audit-x:app` to `app` and run `pulumi up`; raise when the update fails."""
        ...


class Metrics(Protocol):
    def query(self, flux: str) -> list[dict[str, Any]]: ...


@dataclass
class Step:
    weight: int
    decision: str
    report: str
    canary: TrackStats | None = None
    stable: TrackStats | None = None


@dataclass
class Outcome:
    promoted: bool
    steps: list[Step] = field(default_factory=list)
    failed_check: str | None = None

    def summary(self, stack: str, image: str) -> str:
        verdict = "promoted" if self.promoted else f"aborted ({self.failed_check})"
        lines = [
            f"### Canary of `{image}` on {stack}: {verdict}",
            "",
            "| weight | decision | canary requests | canary 5xx | canary p99 | stable 5xx | stable p99 | why |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for step in self.steps:
            c, s = step.canary, step.stable

            def p99(stats: TrackStats | None) -> str:
                return f"{stats.p99_seconds * 1000:.0f} ms" if stats and stats.p99_seconds is not None else ""

            lines.append(
                f"| {step.weight} % | {step.decision} | {c.requests if c else ''} | "
                f"{f'{c.error_ratio:.2%}' if c else ''} | {p99(c)} | {f'{s.error_ratio:.2%}' if s else ''} | "
                f"{p99(s)} | {step.report} |"
            )
        return "\n".join(lines)


Smoke = Callable[[str, Mapping[str, str]], int]


def http_status(url: str, headers: Mapping[str, str]) -> int:
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, TimeoutError):
        return 0


class Driver:
    def __init__(
        self,
        stack_name: str,
        stack: Stack,
        metrics: Metrics,
        *,
        app: Mapping[str, Any],
        settings: AppSettings,
        environment: str,
        app_url: str,
        smoke: Smoke = http_status,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = print,
    ) -> None:
        self.stack_name = stack_name
        self.stack = stack
        self.metrics = metrics
        self.app = {k: v for k, v in app.items() if k != "canary"}  # the stack file's app, without a canary
        self.policy: CanaryPolicy = settings.canary_policy
        self.environment = environment
        self.app_url = app_url.rstrip("/")
        self.smoke_test = smoke
        self.sleep = sleep
        self.say = say

    # --- the updates ---------------------------------------------------------------------------

    def _up(self, stable: str, canary: Mapping[str, Any] | None, message: str) -> None:
        app = {**self.app, "image": stable} | ({"canary": dict(canary)} if canary else {})
        self.say(f"pulumi up ({message})")
        self.stack.up(app, message)

    def _remove_canary(self, stable: str, why: str) -> None:
        # One update: the routes stop naming the canary before its containers go (docs/deploy.md).
        self._up(stable, None, f"canary removed: {why}")

    # --- a release ------------------------------------------------------------------------------

    def release(self, image: str) -> Outcome:
        deployed = self.stack.release() or {"image": image, "canary": None}
        stable, running = str(deployed["image"]), deployed.get("canary")
        if running and running["image"] != image:
            raise CanaryError(
                f"a canary of {running['image']} is in progress on {self.stack_name}: "
                f"finish it, or run `python -m ops.canary {self.stack_name} --abort` first"
            )
        if stable == image and not running:
            self.say(f"{image} is already the stable version: converging the stack, no canary")
            self._up(image, None, "no change of version")
            return Outcome(promoted=True)
        outcome = Outcome(promoted=False)
        weight = int(running["weight"]) if running else 0
        if running:
            self.say(f"resuming the canary of {image} at {weight} %")
        else:
            self._up(stable, {"image": image, "weight": 0}, f"canary of {image} at 0 %")
        if weight == 0:
            failed = self._smoke()
            if failed:
                outcome.steps.append(Step(0, "abort", failed))
                return self._abort(stable, outcome, "smoke test", failed)
            outcome.steps.append(Step(0, "advance", "smoke test passed through the edge with X-Canary: 1"))
        for step_weight in [w for w in self.policy.steps if w > weight]:
            self._up(stable, {"image": image, "weight": step_weight}, f"canary of {image} at {step_weight} %")
            waits = 0
            while True:
                self.say(f"watching {step_weight} % for {self.policy.interval_seconds} s")
                self.sleep(self.policy.interval_seconds)
                stats = track_stats(
                    self.metrics.query(requests_query(self.environment, self.policy.interval_seconds)),
                    self.metrics.query(latency_query(self.environment, self.policy.interval_seconds)),
                )
                judgement = judge(self.policy, stats["stable"], stats["canary"], waits=waits)
                outcome.steps.append(
                    Step(step_weight, judgement.decision, judgement.report, stats["canary"], stats["stable"])
                )
                self.say(f"{step_weight} %: {judgement.decision}: {judgement.report}")
                if judgement.decision == "abort":
                    return self._abort(stable, outcome, judgement.check, judgement.report)
                if judgement.decision == "advance":
                    break
                waits += 1
        self._up(image, None, f"promote {image}")
        outcome.promoted = True
        self.say(f"promoted {image}: the stable version everywhere, the canary gone")
        return outcome

    def _smoke(self) -> str | None:
        """None when every smoke path answered 2xx through the edge with the canary header."""
        for path in self.policy.smoke_paths:
            status = self.smoke_test(f"{self.app_url}{path}", {CANARY_HEADER: "1"})
            self.say(f"smoke {path} via {CANARY_HEADER}: {status or 'no answer'}")
            if not 200 <= status < 300:
                return f"smoke test: {path} answered {status or 'nothing'} through the edge with {CANARY_HEADER}: 1"
        return None

    def _abort(self, stable: str, outcome: Outcome, check: str, report: str) -> Outcome:
        self.say(f"ABORT ({check}): {report}")
        self._remove_canary(stable, f"aborted on {check}")
        outcome.failed_check = check
        return outcome

    def abort(self) -> None:
        deployed = self.stack.release()
        if not deployed or not deployed.get("canary"):
            self.say("no canary is running: nothing to abort")
            return
        self._remove_canary(str(deployed["image"]), "aborted by hand")


# --- the real stack and metrics -----------------------------------------------------------------


class AutomationStack:
    """The stack through Pulumi's Automation API, in this project's directory (needs the CLI)."""

    def __init__(self, stack_name: str) -> None:
        from pulumi import automation  # noqa: PLC0415 (only the real driver needs it)

        self._auto = automation
        self._stack = automation.select_stack(stack_name=stack_name, work_dir=str(REPO_ROOT))

    def release(self) -> dict[str, Any] | None:
        output = self._stack.outputs().get("release")
        return dict(output.value) if output else None

    def up(self, app: Mapping[str, Any], message: str) -> None:
        # An object-valued key travels to the program as JSON text either way.
        self._stack.set_config(APP_KEY, self._auto.ConfigValue(value=json.dumps(app)))
        self._stack.up(message=message, on_output=print)


class GrafanaMetrics:
    """Flux queries through Grafana's /api/ds/query, against the environment's InfluxDB."""

    def __init__(self, grafana_url: str, token: str) -> None:
        self.url = grafana_url.rstrip("/")
        self.token = token

    def query(self, flux: str) -> list[dict[str, Any]]:
        body = {"queries": [{"refId": "A", "datasource": {"uid": INFLUXDB_DATASOURCE_UID}, "query": flux}]}
        request = urllib.request.Request(
            f"{self.url}/api/ds/query",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return frames_to_rows(json.loads(response.read()))


def frames_to_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per table: its group key (the value field's labels) and its last value."""
    rows = []
    for frame in document.get("results", {}).get("A", {}).get("frames", []):
        fields = frame["schema"]["fields"]
        values = frame["data"]["values"]
        for index, column in enumerate(fields):
            if column.get("name") in ("_time", "Time") or not values[index]:
                continue
            rows.append({**(column.get("labels") or {}), "_value": values[index][-1]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.canary", description="A canary release of the app.")
    parser.add_argument("stack", choices=stack_names())
    parser.add_argument("--image", help="the version to release (default: app.image of the stack file)")
    parser.add_argument("--abort", action="store_true", help="remove the running canary; the stable version stays")
    args = parser.parse_args(argv)
    config = load_stack_config(args.stack)
    try:
        settings = load_settings(config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    missing = [name for name in ("GRAFANA_URL", "GRAFANA_TOKEN") if not os.environ.get(name)]
    if missing and not args.abort:
        print(f"{', '.join(missing)} not set: the canary cannot be judged without the edge's metrics", file=sys.stderr)
        return 2
    driver = Driver(
        args.stack,
        AutomationStack(args.stack),
        GrafanaMetrics(os.environ.get("GRAFANA_URL", ""), os.environ.get("GRAFANA_TOKEN", "")),
        app=json.loads(config[APP_KEY]),
        settings=settings.app,
        environment=settings.environment,
        app_url=f"https://{settings.domain}",
    )
    if args.abort:
        driver.abort()
        return 0
    image = args.image or settings.app.image
    try:
        outcome = driver.release(image)
    except CanaryError as error:
        print(error, file=sys.stderr)
        return 2
    summary = outcome.summary(args.stack, image)
    print(summary)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")
    return 0 if outcome.promoted else 1


if __name__ == "__main__":
    sys.exit(main())
