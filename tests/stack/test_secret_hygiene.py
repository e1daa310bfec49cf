"""No secret in any container's config: with every provided secret set (as `secure:` entries of
a stack file, read through the offline plan) and every generated secret an unmistakable mock
value, no secret is in any container's environment, command, entrypoint, labels or health check,
nor in any uploaded file but the secret files, each readable by its service's user alone."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from components.lib import tokens
from components.lib.tokens import label
from harness.mock_engine import SECURE_STAND_INS, Plan, load_stack_config, run_program, stack_config_path
from ops import policy as policy_tool
from tests.helpers import labels

# The user each long-running service reads its secret files as (uid in its official image, or the
# one the program runs it as).
SECRET_READERS = {
    "app": "1000",
    "grafana": "472",
    "influxdb": "1000",
    "collector": "999",
    "backup": "999",
    "postgres": "999",
}
SECURE_KEYS = ("sentryDsn", "slackWebhookUrl", "pagerdutyRoutingKey", "smtpPassword", "pagerdutyCloudwatchUrl")


def stack_file_with_every_secret(stack: str, tmp_path: Path) -> Path:
    """The stack's file, plus every provided secret as the CLI stores it: encrypted."""
    document = yaml.safe_load(stack_config_path(stack).read_text())
    for key in SECURE_KEYS:
        document["config"][f"audit-x:{key}"] = {"secure": "v1:AAAAAAAAAAAAAAAA:encrypted-by-the-stack's-provider"}
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def full(stack: str, tmp_path: Path) -> Plan:
    return run_program(stack, config=load_stack_config(stack, stack_file_with_every_secret(stack, tmp_path)))


def secret_values(plan: Plan) -> set[str]:
    """Every secret value of the plan: the generated ones and the backup runner's keys (the mock
    engine's are unmistakable), and the provided stand-ins."""
    generated = set(re.findall(r"MOCKSECRET[0-9a-f]{24}", json.dumps([r.plain_inputs for r in plan.resources])))
    return generated | set(SECURE_STAND_INS.values())


def carriers(plan: Plan) -> list[str]:
    """Every place outside a secret file where a secret value appears."""
    values = secret_values(plan)
    found = []
    for resource in plan.of_type(tokens.CONTAINER):
        inputs = resource.plain_inputs
        places = {
            "envs": inputs.get("envs"),
            "command": inputs.get("command"),
            "entrypoints": inputs.get("entrypoints"),
            "labels": inputs.get("labels"),
            "healthcheck": inputs.get("healthcheck"),
            "name": inputs.get("name"),
        }
        for upload in inputs.get("uploads") or []:
            if upload["file"].startswith("/run/secrets/") and upload.get("permissions") == "0400":
                continue
            places[f"upload {upload['file']}"] = upload.get("content")
        for place, value in places.items():
            text = json.dumps(value)
            found += [f"{resource.name} {place}" for secret in values if secret in text]
    return found


def test_the_stand_ins_are_secret_and_switch_on_what_they_configure(full: Plan, stack: str) -> None:
    grafana = next(r for r in full.of_type(tokens.CONTAINER) if r.name == f"audit-x-{stack}-grafana")
    files = {u["file"] for u in grafana.inputs["uploads"]}
    assert {
        "/run/secrets/slack-webhook-url",
        "/run/secrets/pagerduty-routing-key",
        "/run/secrets/smtp-password",
    } <= files
    alerting = yaml.safe_load(
        next(u["content"] for u in grafana.inputs["uploads"] if u["file"].endswith("alerting/audit-x.yaml"))
    )
    critical = next(p for p in alerting["contactPoints"] if p["name"].endswith("-critical"))
    assert [r["type"] for r in critical["receivers"]] == ["pagerduty", "slack"]
    web = next(r for r in full.of_type(tokens.CONTAINER) if r.name == f"audit-x-{stack}-web-0")
    assert any(u["file"] == "/run/secrets/sentry-dsn" for u in web.inputs["uploads"])
    # Masked in the plan like every secret.
    assert {u["content"] for u in grafana.inputs["uploads"] if u["file"].startswith("/run/secrets/")} == {"[secret]"}
    assert full.warnings == []  # it pages someone


def test_no_secret_is_in_any_containers_config(full: Plan) -> None:
    assert len(secret_values(full)) >= 12
    assert carriers(full) == []
    # The check finds one when there is one: a secret put into a label.
    web = next(r for r in full.of_type(tokens.CONTAINER) if "-web-0" in r.name)
    leak = sorted(secret_values(full))[0]
    leaky = dataclasses.replace(web, plain_inputs=web.plain_inputs | {"labels": [{"label": "x", "value": leak}]})
    assert carriers(dataclasses.replace(full, resources=[leaky])) == [f"{web.name} labels"]


def test_every_secret_file_is_its_services_alone(full: Plan) -> None:
    checked = 0
    for resource in full.of_type(tokens.CONTAINER):
        found = labels(resource)
        for upload in resource.plain_inputs.get("uploads") or []:
            if not upload["file"].startswith("/run/secrets/"):
                continue
            checked += 1
            assert upload["permissions"] == "0400", (resource.name, upload["file"])
            if found[label("lifecycle")] == "service":
                assert upload["owner"] == SECRET_READERS[found[label("service")]], (resource.name, upload["file"])
    assert checked >= 20


def test_a_stack_without_a_pager_says_so_in_the_preview_and_the_policy_pack(stack: str) -> None:
    plan = run_program(stack)
    assert any("page nobody" in w and "pagerdutyRoutingKey" in w for w in plan.warnings)
    advisories = [v for v in policy_tool.check(plan, policy_tool.policy_config(stack)) if v.advisory]
    assert [v.policy for v in advisories] == ["critical-alerts-page-someone"]


def test_a_stack_with_a_pager_is_quiet(full: Plan, stack: str) -> None:
    assert not [v for v in policy_tool.check(full, policy_tool.policy_config(stack)) if v.advisory]
