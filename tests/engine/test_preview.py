"""`pulumi preview` of the staging stack by the real engine, with the plugins built here, set
beside the offline plan of the same config.

The file state backend knows only the organization `organization`, so staging's seed source
(`audit-x/audit-x/prod`, a Pulumi Cloud name) is set to `organization/audit-x/prod`, an empty
stack: the first rollout, before prod exports anything. Its Docker host is a socket that does not
exist, so no run can reach a host outside this machine (a preview needs none: the bridged provider
connects only to create, read or change). The offline plan is run with the same config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.mock_engine import Plan, run_program
from harness.pulumi_engine.cli import Workspace
from harness.pulumi_engine.preview import disagreements, engine_inputs, type_and_name
from harness.pulumi_engine.project import copy_project

SEED_SOURCE = "organization/audit-x/prod"
NO_DOCKER = "unix:///nonexistent/audit-x-no-docker.sock"


@pytest.fixture(scope="module")
def staging_preview(tmp_path_factory: pytest.TempPathFactory, engine_bin: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("staging-preview")
    ws = Workspace.create(root, project_dir=copy_project(root / "project"), bin_dir=engine_bin)
    ws.pulumi("stack", "init", "prod")
    ws.pulumi("stack", "init", "staging")
    ws.pulumi("config", "set", "--stack", "staging", "--path", "stagingSeed.sourceStack", SEED_SOURCE)
    ws.pulumi("config", "set", "--stack", "staging", "dockerHost", NO_DOCKER)
    return json.loads(ws.pulumi("preview", "--stack", "staging", "--json").stdout)


@pytest.fixture(scope="module")
def offline_plan() -> Plan:
    seed = json.dumps({"sourceStack": SEED_SOURCE})
    overrides = {"audit-x:stagingSeed": seed, "audit-x:dockerHost": NO_DOCKER}
    return run_program("staging", overrides=overrides, stack_outputs={SEED_SOURCE: {}})


def test_the_engine_would_create_exactly_what_the_offline_plan_declares(
    staging_preview: dict[str, Any], offline_plan: Plan
) -> None:
    ops = {type_and_name(step["urn"]): step["op"] for step in staging_preview["steps"]}
    assert ops.pop(("pulumi:pulumi:Stack", "audit-x-staging")) == "create"
    assert set(ops) == {(r.type, r.name) for r in offline_plan.resources}
    assert ops.pop(("pulumi:pulumi:StackReference", "audit-x-staging-seed-reader-source")) == "read"
    assert set(ops.values()) == {"create"}
    # Created: every resource but the stack reference (read), and the stack itself.
    assert staging_preview["changeSummary"] == {"create": len(offline_plan.resources)}


def test_the_engine_reports_no_error_and_the_programs_own_warnings(staging_preview: dict[str, Any]) -> None:
    diagnostics = staging_preview["diagnostics"]
    assert [d for d in diagnostics if d["severity"] == "error"] == []
    messages = [d["message"] for d in diagnostics]
    assert any("critical alerts of staging page nobody" in m for m in messages)
    assert any(f"{SEED_SOURCE} has not exported `stagingSeed` yet" in m for m in messages)


def test_every_input_the_engine_knows_before_the_update_is_the_one_the_offline_plan_records(
    staging_preview: dict[str, Any], offline_plan: Plan
) -> None:
    # The Image's contextHash is the native Image's own digest of its build context (no plan input).
    found = set(disagreements(staging_preview, offline_plan, ignore=frozenset({"contextHash"})))
    # The only differences: ARNs that each side makes up for a resource of the watcher's provider
    # (us-east-1). The mocks give every ARN the stack's region and an `arn:aws:mock:` prefix; the
    # stand-in gives AWS's own form in the region of the provider that creates the resource.
    alarms = ["heartbeat-missing", "app-unreachable", "grafana-unreachable"]
    assert found == {
        "aws:sns/topic:Topic audit-x-staging-watcher kmsMasterKeyId",
        "aws:sns/topicSubscription:TopicSubscription audit-x-staging-watcher-email-0 topic",
        *(
            f"aws:cloudwatch/metricAlarm:MetricAlarm audit-x-staging-watcher-{a} {k}"
            for a in alarms
            for k in ("alarmActions", "okActions")
        ),
    }


def test_the_bridged_docker_provider_takes_the_container_as_the_sdk_sends_it(staging_preview: dict[str, Any]) -> None:
    # The names the SDK sends (networksAdvanced, command, a healthcheck block flattened to one
    # object) are the bridged schema's: Check accepted them and added no input of its own.
    postgres = engine_inputs(staging_preview)[("docker:index/container:Container", "audit-x-staging-postgres")]
    assert postgres["name"] == "audit-x-staging-postgres"
    assert postgres["image"] == postgres["image"].split("@")[0] and postgres["image"].startswith(
        "audit-x-staging-postgres-server:"
    )
    assert postgres["networksAdvanced"] == [{"aliases": ["postgres"], "name": "audit-x-staging-data"}]
    assert postgres["command"][0] == "postgres"
    assert set(postgres["healthcheck"]) == {"interval", "retries", "startInterval", "startPeriod", "tests", "timeout"}
    assert postgres["uploads"] == "[secret]"
