"""Scripts and configs shipped as files: every shell script and every health-check command passes
shellcheck, and a rendered file never keeps a placeholder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.lib.files import COMPONENTS_DIR, render_shipped, shell_scripts
from harness.mock_engine import Plan
from tests.helpers import container, containers, healthcheck_command, uploaded


def shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("shellcheck")
    assert binary is not None, "no shellcheck: `make test` installs it (harness/system_packages.sh)"
    return subprocess.run([binary, "--shell=sh", str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_components_ship_their_shell_scripts() -> None:
    names = {path.name for path in shell_scripts()}
    assert {"postgres_password.sh", "redpanda_cluster_properties.sh", "grafana_admin_password.sh"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.name)
def test_every_shipped_script_passes_shellcheck(script: Path) -> None:
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout


def test_every_health_check_command_passes_shellcheck(plan: Plan, tmp_path: Path) -> None:
    probes = {c.name: healthcheck_command(c) for c in containers(plan) if c.inputs.get("healthcheck")}
    assert len(probes) >= 10
    failures = []
    for name, command in probes.items():
        script = tmp_path / f"{name}.sh"
        script.write_text(f"#!/bin/sh\n{command}\n")
        result = shellcheck(script)
        if result.returncode != 0:
            failures.append(f"{name}: {result.stdout}")
    assert not failures, "\n".join(failures)


def test_shellcheck_catches_what_it_is_here_for(tmp_path: Path) -> None:
    # The checks above only mean something if an unquoted expansion fails.
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/bin/sh\nrm -rf $TARGET/"x"\n')
    assert shellcheck(bad).returncode != 0


def test_a_placeholder_without_a_value_is_an_error() -> None:
    redis_component = str(COMPONENTS_DIR / "data" / "redis.py")
    with pytest.raises(KeyError, match="max_memory_mb"):
        render_shipped(redis_component, "redis.conf", port=6379, auth_file="/run/secrets/redis-auth.conf")


@pytest.mark.parametrize(
    ("service", "path"),
    [("redis", "/usr/local/etc/redis/redis.conf"), ("alloy", "/etc/alloy/config.alloy")],
)
def test_rendered_files_keep_no_placeholder(plan: Plan, service: str, path: str) -> None:
    content = uploaded(container(plan, service), path)
    assert "${" not in content
    assert content.startswith(("# Written by the audit-x Pulumi program", "// Written by the audit-x Pulumi program"))
