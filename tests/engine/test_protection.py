"""Prod's protection, held by the real engine: replacing a protected resource fails in preview,
and `pulumi destroy` refuses.

Only what needs no Docker host is deployed: the backup bucket and the environment's KMS key
(through the aws STAND-IN: the engine's protection is real, AWS is not), with their parents and
the providers (`pulumi up --target`). The stack's Docker host is a socket that does not exist, so
no run can reach a host outside this machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.pulumi_engine.cli import Workspace
from harness.pulumi_engine.preview import type_and_name
from harness.pulumi_engine.project import copy_project

PROTECTED = ("audit-x-prod-backups", "audit-x-prod-kms")


def targets(preview: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The URNs `pulumi up --target` needs to create `names`: each with its parents, its
    dependencies and its provider, and every provider with its parents (providers register
    whatever is targeted)."""
    state = {step["urn"]: step["newState"] for step in preview["steps"]}
    chosen: set[str] = set()

    def add(urn: str | None, follow: bool) -> None:
        if not urn or urn in chosen or urn not in state:
            return
        chosen.add(urn)
        resource = state[urn]
        add(resource.get("parent"), follow)
        if follow:
            for dependency in resource.get("dependencies") or []:
                add(dependency, follow)
            provider = resource.get("provider") or ""
            add(provider.rsplit("::", 1)[0], follow)

    by_name = {type_and_name(urn)[1]: urn for urn in state}
    for name in names:
        add(by_name[name], follow=True)
    for urn in state:
        if type_and_name(urn)[0].startswith("pulumi:providers:"):
            add(urn, follow=False)
    return sorted(urn for urn in chosen if type_and_name(urn)[0] != "pulumi:pulumi:Stack")


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, engine_bin: Path) -> Workspace:
    root = tmp_path_factory.mktemp("protection")
    ws = Workspace.create(root, project_dir=copy_project(root / "project"), bin_dir=engine_bin)
    ws.pulumi("stack", "init", "prod")
    ws.pulumi("config", "set", "--stack", "prod", "dockerHost", f"unix://{root}/no-docker-here.sock")
    preview = json.loads(ws.pulumi("preview", "--stack", "prod", "--json").stdout)
    chosen = targets(preview, PROTECTED)
    ws.pulumi("up", "--stack", "prod", "--yes", "--skip-preview", *[arg for urn in chosen for arg in ("--target", urn)])
    return ws


def stack_resources(ws: Workspace) -> dict[str, dict[str, Any]]:
    exported = json.loads(ws.pulumi("stack", "export", "--stack", "prod").stdout)
    return {type_and_name(r["urn"])[1]: r for r in exported["deployment"]["resources"]}


def test_the_protected_resources_are_deployed_protected(prod: Workspace) -> None:
    deployed = stack_resources(prod)
    for name in PROTECTED:
        assert deployed[name].get("protect") is True, name
        assert deployed[name].get("retainOnDelete") is True, name
    assert deployed["audit-x-prod-backups"]["id"] == "audit-x-prod-backups-euw1"


def test_a_change_that_replaces_a_protected_resource_fails_in_preview(prod: Workspace) -> None:
    # The bucket's name is ForceNew in pulumi-aws: a new name replaces the bucket.
    prod.pulumi("config", "set", "--stack", "prod", "--path", "backup.bucketName", "audit-x-prod-backups-euw2")
    try:
        done = prod.pulumi("preview", "--stack", "prod", "--json", check=False)
    finally:
        prod.pulumi("config", "set", "--stack", "prod", "--path", "backup.bucketName", "audit-x-prod-backups-euw1")
    assert done.returncode != 0
    errors = [d for d in json.loads(done.stdout)["diagnostics"] if d["severity"] == "error"]
    bucket = [d["message"] for d in errors if d.get("urn", "").endswith("::audit-x-prod-backups")]
    assert bucket, errors
    assert "protect" in bucket[0]
    assert "audit-x-prod-backups" in stack_resources(prod)


def test_destroy_refuses_and_deletes_nothing_protected(prod: Workspace) -> None:
    done = prod.pulumi("destroy", "--stack", "prod", "--yes", check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    for name in PROTECTED:
        assert f'::{name}" cannot be deleted\nbecause it is protected' in output.replace("\n    ", "\n"), name
    deployed = stack_resources(prod)
    assert set(PROTECTED) <= set(deployed)
