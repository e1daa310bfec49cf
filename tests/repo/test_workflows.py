"""The CI/CD workflows: actionlint-clean, and wired as docs/deploy.md says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.lib import tokens
from components.settings import load_settings
from harness.mock_engine import REPO_ROOT, Plan, load_stack_config
from ops.images import bases, declared_images
from tests.helpers import containers, image_reference

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    # PyYAML reads the `on:` key as True (YAML 1.1); give it its name back.
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True)
    return document


def test_actionlint_passes_on_every_workflow() -> None:
    binary = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert binary, "actionlint is installed by requirements-dev.txt"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 5
    result = subprocess.run([binary, "-color=false", *files], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_lint_and_the_readmes_test_command() -> None:
    steps = [step.get("run", "") for step in workflow("ci.yml")["jobs"]["test"]["steps"]]
    assert "make lint" in steps and "make test" in steps
    assert set(workflow("ci.yml")["on"]) >= {"pull_request", "push", "workflow_call"}


def test_previews_use_oidc_and_forks_get_the_offline_plan() -> None:
    preview = workflow("preview.yml")
    job = preview["jobs"]["preview"]
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert job["permissions"]["id-token"] == "write"
    assert job["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    pulumi_step = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions"))
    assert pulumi_step["with"]["command"] == "preview"
    assert pulumi_step["with"]["comment-on-pr"] is True
    assert pulumi_step["with"]["policyPacks"] == "policy"
    assert pulumi_step["with"]["policyPackConfigs"] == "policy/config.${{ matrix.stack }}.json"
    offline = preview["jobs"]["offline-plan"]
    assert "if" not in offline  # every PR, forks included
    assert any("ops.plan" in s.get("run", "") for s in offline["steps"])
    assert any("ops.policy staging" in s.get("run", "") for s in offline["steps"])


def test_no_long_lived_aws_keys_in_any_workflow() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "AWS_SECRET_ACCESS_KEY" not in text and "aws-secret-access-key" not in text, path.name


def test_deploy_goes_staging_then_prod_never_overlapping() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert deploy["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    jobs = deploy["jobs"]
    assert jobs["staging"]["needs"] == ["test", "scan"]
    assert jobs["prod"]["needs"] == "staging"
    assert jobs["prod"]["environment"] == "production"
    up = next(s for s in jobs["staging"]["steps"] if str(s.get("uses", "")).startswith("pulumi/actions"))
    assert (up["with"]["command"], up["with"]["stack-name"]) == ("up", "staging")
    # Prod goes through the canary driver, behind the approval environment; the action only
    # installs the CLI the driver's Automation API runs.
    prod_steps = jobs["prod"]["steps"]
    cli = next(s for s in prod_steps if str(s.get("uses", "")).startswith("pulumi/actions"))
    assert "with" not in cli
    canary = next(s for s in prod_steps if "ops.canary" in str(s.get("run", "")))
    assert canary["run"] == ".venv/bin/python -m ops.canary prod"
    assert set(canary["env"]) == {"PULUMI_ACCESS_TOKEN", "GRAFANA_URL", "GRAFANA_TOKEN"}
    assert prod_steps.index(cli) < prod_steps.index(canary)
    for stage in ("staging", "prod"):
        steps = jobs[stage]["steps"]
        assert any("/health" in s.get("run", "") and "--fail" in s.get("run", "") for s in steps)
    assert any(s.get("with", {}).get("path") == "loadtest/smoke.js" for s in jobs["staging"]["steps"])


def test_trivy_scans_the_list_the_plans_give_and_fails_on_critical() -> None:
    scan = workflow("scan.yml")
    assert any("ops.images --json" in s.get("run", "") for s in scan["jobs"]["images"]["steps"])
    gate = next(s for s in scan["jobs"]["trivy"]["steps"] if s.get("name") == "Gate (CRITICAL with a fix)")
    assert (gate["with"]["severity"], gate["with"]["exit-code"]) == ("CRITICAL", "1")
    assert scan["jobs"]["trivy"]["strategy"]["matrix"]["image"] == "${{ fromJSON(needs.images.outputs.images) }}"


def test_the_image_list_is_every_image_the_stacks_run(plans: dict[str, Plan]) -> None:
    running: set[str] = set()
    for plan in plans.values():
        built = {img.inputs["imageName"]: img for img in plan.of_type(tokens.BUILT_IMAGE)}
        for resource in containers(plan):
            reference = image_reference(plan, resource)
            # A locally built image is scanned through the pulled images it is built FROM.
            running |= bases(reference, built) if reference in built else {reference}
    assert declared_images() == sorted(running)


def test_load_test_stays_under_the_edges_rate_limit() -> None:
    sla = json.loads((REPO_ROOT / "loadtest" / "sla.json").read_text())
    staging = load_settings(load_stack_config("staging"))
    assert sla["rate_per_second"] < staging.edge.rate_limit_average
    script = (REPO_ROOT / "loadtest" / "smoke.js").read_text()
    for key in ("max_error_rate", "p95_ms", "p99_ms", "rate_per_second", "duration"):
        assert f"sla.{key}" in script


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml", "scan.yml", "deploy.yml", "staging-seed.yml"])
def test_every_workflow_starts_read_only(name: str) -> None:
    assert workflow(name)["permissions"]["contents"] == "read"


def test_pr_previews_post_what_the_change_would_take_down() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    names = [s.get("name", s.get("uses", "")) for s in job["steps"]]
    verdict = next(s for s in job["steps"] if s.get("name") == "What this change would take down")
    # After the real preview, on the same stack, from its JSON steps, posted on the PR.
    assert names.index("What this change would take down") > names.index("pulumi preview")
    assert 'pulumi preview --stack "$STACK" --refresh --json' in verdict["run"]
    assert '-m ops.preview "$STACK" --from-preview' in verdict["run"]
    assert "gh pr comment" in verdict["run"]
    assert verdict["env"]["STACK"] == "${{ matrix.stack }}"
    assert job["permissions"]["pull-requests"] == "write"


def test_a_failed_prod_deploy_pages_the_on_call_naming_the_approver() -> None:
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    prod = deploy["jobs"]["prod"]
    assert prod["environment"] == "production"
    assert prod["permissions"]["actions"] == "read"  # the approvals API
    last = prod["steps"][-1]
    assert last["if"] == "failure()"
    assert last["run"] == "python3 -m ops.deploy_page"
    assert last["env"]["PAGERDUTY_ROUTING_KEY"] == "${{ secrets.PAGERDUTY_ROUTING_KEY }}"
    # Staging's failure pages nobody: it stops prod, and whoever pushed is told by GitHub.
    assert all("deploy_page" not in str(step.get("run", "")) for step in deploy["jobs"]["staging"]["steps"])


def test_staging_loads_prods_seed_weekly_and_on_demand_never_during_a_deploy() -> None:
    seeding = workflow("staging-seed.yml")
    assert seeding["on"]["schedule"] == [{"cron": "0 6 * * 1"}]  # Monday, after Sunday's drill made a seed
    assert set(seeding["on"]["workflow_dispatch"]["inputs"]) == {"seed", "undo"}
    assert seeding["concurrency"] == workflow("deploy.yml")["concurrency"]  # one group: never overlapping
    script = seeding["jobs"]["load"]["steps"][-1]["run"]
    assert ".venv/bin/python -m ops.seed_load staging" in script and "--undo" in script
    # The drill that makes the seed runs before the schedule: prod's verifySchedule is on Sunday.
    prod = load_settings(load_stack_config("prod")).backup.verify_schedule
    assert prod.startswith("sun ")
