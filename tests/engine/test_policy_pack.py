"""The policy pack through the real CLI (`pulumi preview --policy-pack policy`, as PR previews run
it), on staging's config as in tests/engine/test_preview.py: the project's language host runs the
pack (RunPlugin), the engine hands it every resource."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.pulumi_engine.cli import Workspace
from harness.pulumi_engine.project import copy_project

SEED_SOURCE = "organization/audit-x/prod"
NO_DOCKER = "unix:///nonexistent/audit-x-no-docker.sock"
VIOLATION = re.compile(r"^\s+- \[(mandatory|advisory)\]\s+(\S+)\s+\((\S+): (\S+)\)$", re.MULTILINE)


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, engine_bin: Path) -> Workspace:
    root = tmp_path_factory.mktemp("policy-pack")
    ws = Workspace.create(root, project_dir=copy_project(root / "project"), bin_dir=engine_bin)
    ws.pulumi("stack", "init", "prod")
    ws.pulumi("stack", "init", "staging")
    ws.pulumi("config", "set", "--stack", "staging", "--path", "stagingSeed.sourceStack", SEED_SOURCE)
    ws.pulumi("config", "set", "--stack", "staging", "dockerHost", NO_DOCKER)
    return ws


def test_the_pack_reports_no_mandatory_violation_of_staging(staging: Workspace) -> None:
    done = staging.pulumi("preview", "--stack", "staging", "--policy-pack", "policy")
    assert "audit-x@v0.0.1 (local: policy)" in done.stdout
    assert [v for v in VIOLATION.findall(done.stdout) if v[0] == "mandatory"] == []


def test_an_edit_that_breaks_a_rule_fails_the_preview_naming_rule_and_resource(staging: Workspace) -> None:
    policy = staging.project_dir / "components" / "lib" / "containers.py"
    original = policy.read_text()
    hardened = '        security_opts=["no-new-privileges:true"],\n'
    assert original.count(hardened) == 1
    policy.write_text(original.replace(hardened, hardened + "        privileged=True,\n"))
    try:
        done = staging.pulumi("preview", "--stack", "staging", "--policy-pack", "policy", check=False)
    finally:
        policy.write_text(original)
    assert done.returncode != 0
    found = {(level, rule, name) for level, rule, _type, name in VIOLATION.findall(done.stdout)}
    assert ("mandatory", "hardened-containers", "audit-x-staging-postgres") in found
    assert ("mandatory", "docker-socket", "audit-x-staging-postgres") in found
    assert "runs privileged" in done.stdout
