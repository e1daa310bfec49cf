"""`python -m ops.plan STACK [--json]`: what a newcomer runs first, as a reviewer reads it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.lib import tokens
from harness.mock_engine import REPO_ROOT, load_stack_config, run_program
from ops import plan as plan_module


def run_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.plan", *args],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_json_plan_has_the_documented_shape(stack: str) -> None:
    result = run_plan(stack, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"stack", "resources", "outputs"}
    assert document["stack"] == stack
    for resource in document["resources"]:
        assert set(resource) == {"type", "name", "parent", "inputs"}
    names = {r["name"] for r in document["resources"] if r["type"] == tokens.CONTAINER}
    for service in ("postgres", "redis", "redpanda", "influxdb", "grafana", "web-0", "worker-sidekiq-0", "migrate"):
        assert f"audit-x-{stack}-{service}" in names
    secrets = [r for r in document["resources"] if r["type"] == tokens.SECRET]
    assert len(secrets) >= 5
    lifecycle = next(r for r in document["resources"] if r["type"].endswith("BucketLifecycleConfiguration"))
    makes_seeds = bool(document["outputs"]["stagingSeed"])  # its seeds expire too (prod)
    assert len(lifecycle["inputs"]["rules"]) == 5 + makes_seeds
    assert "MOCKSECRET" not in result.stdout
    assert "[secret]" in result.stdout


def test_tree_shows_each_component_and_what_it_declares() -> None:
    result = run_plan("prod")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Stack prod: ")
    for component in (
        "audit-x:data:Postgres",
        "audit-x:app:App",
        "audit-x:secrets:Secrets",
        "audit-x:backup:BackupBucket",
    ):
        assert any(component in line for line in lines), component
    postgres_volume = next(line for line in lines if "docker:Volume  audit-x-prod-postgres-data" in line)
    assert "[protected]" in postgres_volume
    assert "Outputs:" in lines
    assert "MOCKSECRET" not in result.stdout


def test_unknown_stack_is_refused() -> None:
    result = run_plan("qa")
    assert result.returncode == 2
    assert "invalid choice: 'qa'" in result.stderr


def test_invalid_config_prints_the_settings_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = load_stack_config("staging") | {"audit-x:environment": "Staging!"}
    monkeypatch.setattr(plan_module, "run_program", lambda stack: run_program(stack, config=broken))
    assert plan_module.main(["staging"]) == 1
    err = capsys.readouterr().err
    assert "Invalid stack config (1 problem)" in err
    assert "audit-x:environment = 'Staging!'" in err


def test_the_plan_prints_the_programs_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_module.main(["prod"]) == 0
    err = capsys.readouterr().err
    assert "warning: critical alerts of prod page nobody" in err
    assert "pagerdutyRoutingKey" in err
