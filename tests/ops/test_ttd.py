"""Time to detect: `python -m ops.ttd STACK` adds up the delays the rendered configs really have,
and prod's worst critical alert is notified within 5 minutes."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
import yaml

from components.lib.durations import parse_seconds
from components.observability.alerting import alert_rules
from components.observability.watcher import time_to_detect
from components.settings import WatcherSettings, load_settings
from harness.mock_engine import REPO_ROOT, Plan, load_stack_config
from ops.ttd import max_ttd_seconds, rows
from tests.helpers import container, uploaded

ROADMAP_TTD_SECONDS = 300


def run_ttd(stack: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "ops.ttd", stack], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()


def test_prod_detects_every_critical_failure_within_five_minutes() -> None:
    lines = run_ttd("prod")
    assert lines[-1].startswith("max_ttd_s=")
    worst = int(lines[-1].removeprefix("max_ttd_s="))
    assert worst <= ROADMAP_TTD_SECONDS
    settings = load_settings(load_stack_config("prod"))
    critical = {rule.key for rule in alert_rules(settings) if rule.severity == "critical"}
    listed = {line.split()[0] for line in lines[1:-1] if not line.startswith("external ")}
    assert listed == critical
    critical_ttds = [r.time_to_detect(settings.alerting) for r in alert_rules(settings) if r.severity == "critical"]
    external = [int(line.split("ttd_s=")[1].split()[0]) for line in lines if line.startswith("external ")]
    assert worst == max(critical_ttds + external)


def test_prod_detects_a_lost_host_from_outside_within_three_minutes() -> None:
    external = {
        line.split()[1]: int(line.split("ttd_s=")[1].split()[0])
        for line in run_ttd("prod")
        if line.startswith("external ")
    }
    assert set(external) == {"app-unreachable", "grafana-unreachable", "heartbeat-missing"}
    assert max(external.values()) <= 180


@pytest.mark.parametrize(
    ("interval", "threshold", "missing", "probe", "heartbeat"),
    [
        # By hand: probe = interval x threshold + 60 (metric delay) + 60 (one alarm period) + 30 (SNS);
        # heartbeat = 60 (the period of the last one) + flush 10 + 60 x missing periods + 30.
        (10, 3, 1, 10 * 3 + 60 + 60 + 30, 60 + 10 + 60 + 30),
        (30, 3, 2, 30 * 3 + 60 + 60 + 30, 60 + 10 + 120 + 30),
        (30, 1, 5, 30 + 60 + 60 + 30, 60 + 10 + 300 + 30),
    ],
)
def test_external_time_to_detect_by_hand(
    interval: int, threshold: int, missing: int, probe: int, heartbeat: int
) -> None:
    watcher = WatcherSettings.model_validate(
        {"probeIntervalSeconds": interval, "failureThreshold": threshold, "heartbeatMissingPeriods": missing}
    )
    checks = {name: sum(s for _, s in stages) for name, stages in time_to_detect(watcher, 10).items()}
    assert checks == {"app-unreachable": probe, "grafana-unreachable": probe, "heartbeat-missing": heartbeat}


def test_a_dead_service_is_detected_faster_than_the_goal() -> None:
    settings = load_settings(load_stack_config("prod"))
    by_key = {rule.key: seconds for rule, seconds in rows(settings)}
    assert by_key["container-not-running"] <= ROADMAP_TTD_SECONDS // 2


def test_the_sum_follows_the_config() -> None:
    config = load_stack_config("prod")
    alerting = json.loads(config["audit-x:alerting"])
    before = max_ttd_seconds(load_settings(config))
    slower = load_settings({**config, "audit-x:alerting": json.dumps({**alerting, "criticalPendingSeconds": 600})})
    assert max_ttd_seconds(slower) == before - alerting["criticalPendingSeconds"] + 600
    assert max_ttd_seconds(slower) > ROADMAP_TTD_SECONDS


def test_the_stages_are_the_rendered_configs_own_values(plan: Plan, stack: str) -> None:
    """Each delay ops.ttd adds up is read back from the files Grafana and Telegraf are given."""
    settings = load_settings(load_stack_config(stack))
    document = yaml.safe_load(uploaded(container(plan, "grafana"), "/etc/grafana/provisioning/alerting/audit-x.yaml"))
    telegraf = tomllib.loads(uploaded(container(plan, "collector"), "/etc/telegraf/telegraf.conf"))
    rendered = {rule["uid"]: (group, rule) for group in document["groups"] for rule in group["rules"]}
    (policy,) = document["policies"]
    (critical_route,) = [r for r in policy["routes"] if r["object_matchers"] == [["severity", "=", "critical"]]]
    for rule in alert_rules(settings):
        group, rendered_rule = rendered[rule.uid(stack)]
        stages = {stage.name: stage.seconds for stage in rule.detection_stages(settings.alerting)}
        assert stages["evaluation interval"] == parse_seconds(group["interval"])
        assert stages["pending period"] == parse_seconds(rendered_rule["for"])
        route = critical_route if rule.severity == "critical" else policy
        assert stages["notification group wait"] == parse_seconds(route["group_wait"])
        if "collection interval" in stages:
            assert stages["collection interval"] == parse_seconds(telegraf["agent"]["interval"])
            assert stages["flush interval"] == parse_seconds(telegraf["agent"]["flush_interval"])
        for name in ("averaging window", "probe window", "counting window", "query window without data"):
            if name in stages:
                assert stages[name] == rendered_rule["data"][0]["relativeTimeRange"]["from"], (rule.uid(stack), name)
