"""ops/seed_load.py's command line and its Docker CLI calls (ops/docker_host.py), against a stand-in `docker` on PATH
that records its arguments (the whole load against real servers is in
tests/runner/test_staging_seed.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from components.lib.tokens import label
from ops import seed_load
from ops.docker_host import DockerHost

FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$DOCKER_CALLS"
case "$3 $*" in
  *service=backup*) echo "audit-x-staging-backup" ;;
  *role=migrate*) echo "audit-x-staging-migrate" ;;
  ps*) echo "audit-x-staging-web-0"; echo "audit-x-staging-worker-sidekiq-0" ;;
  exec*) echo '{"staged": {"seed": "staging-seed/postgres/audit_x_prod/x.dump", "row_counts": {"public.users": 2}}}' ;;
  inspect*) echo '[{"Name": "/x", "State": {"Status": "running", "Health": {"Status": "healthy"}}, "Config": {}}]' ;;
esac
"""


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(FAKE_DOCKER)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CALLS", str(calls))
    return calls


def test_the_docker_cli_is_called_on_the_stacks_host_with_label_filters(docker: Path) -> None:
    cli = DockerHost("ssh://deploy@docker.staging.audit-x.example.com")
    labels = {label("environment"): "staging", label("service"): "app"}
    assert cli.containers(labels, running=True) == ["audit-x-staging-web-0", "audit-x-staging-worker-sidekiq-0"]
    assert cli.exec_json("audit-x-staging-backup", ["python", "-m", "runner", "seed-load", "--stage"])["staged"]
    cli.stop(["audit-x-staging-web-0"])
    assert cli.healthy("audit-x-staging-web-0") is True
    calls = docker.read_text().splitlines()
    host = "--host ssh://deploy@docker.staging.audit-x.example.com"
    filters = "--filter label=io.audit-x.environment=staging --filter label=io.audit-x.service=app"
    assert calls[0] == f"{host} ps {filters} --format {{{{.Names}}}}"
    assert calls[1] == f"{host} exec audit-x-staging-backup python -m runner seed-load --stage"
    assert calls[2] == f"{host} stop audit-x-staging-web-0"
    assert calls[3] == f"{host} inspect audit-x-staging-web-0"


def test_a_stack_that_loads_no_seeds_is_refused_with_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert seed_load.main(["prod"]) == 2
    assert "prod loads no seeds: its stagingSeed.sourceStack is not set" in capsys.readouterr().err


def test_the_summary_names_each_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker: Path) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert seed_load.main(["staging"]) == 0
    text = summary.read_text()
    assert text.startswith("## Staging seed load\n")
    assert "- staged staging-seed/postgres/audit_x_prod/x.dump beside the live database: 2 rows" in text
    assert "- staging runs on staging-seed/postgres/audit_x_prod/x.dump" in text
    calls = docker.read_text().splitlines()
    host = "--host ssh://deploy@docker.staging.audit-x.example.com"
    assert f"{host} start --attach audit-x-staging-migrate" in calls
    stop = calls.index(f"{host} stop audit-x-staging-web-0 audit-x-staging-worker-sidekiq-0")
    swap = calls.index(f"{host} exec audit-x-staging-backup python -m runner seed-load --swap")
    assert stop < swap < calls.index(f"{host} start --attach audit-x-staging-migrate")
