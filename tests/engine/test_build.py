"""The engine's binaries are built from the pinned versions and installed as the SDKs ask for them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness.pulumi_engine import build
from harness.pulumi_engine.cli import Workspace


def version_of(binary: Path, flag: str = "--version") -> str:
    done = subprocess.run([str(binary), flag], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def test_the_cli_reports_the_nearest_served_release_of_the_pinned_sdk(workspace: Workspace) -> None:
    assert build.pinned("pulumi") == "3.272.0"
    assert workspace.pulumi("version").stdout.strip() == "v3.274.0"


def test_the_language_host_reports_the_cli_version_and_has_its_executor_beside_it(engine_bin: Path) -> None:
    assert version_of(engine_bin / "pulumi-language-python", "-version") == "3.274.0"
    executor = engine_bin / "pulumi-language-python-exec"
    assert executor.stat().st_mode & 0o111
    assert "pulumi" in executor.read_text()


def test_each_provider_plugin_reports_the_version_its_sdk_pins(engine_bin: Path) -> None:
    versions = {plugin.name: version_of(plugin.path(engine_bin)) for plugin in build.plugins()}
    assert versions == {"aws": "7.51.1", "docker": "5.2.0", "random": "4.21.4"}
    assert versions == {p.name: build.pinned(f"pulumi-{p.name}") for p in build.plugins()}


def test_the_plugins_are_installed_under_the_names_and_versions_the_sdks_ask_for(workspace: Workspace) -> None:
    installed = {(p["name"], p["kind"], p["version"]) for p in workspace.installed_plugins()}
    assert installed == {
        ("aws", "resource", "7.51.1"),
        ("docker", "resource", "5.2.0"),
        ("random", "resource", "4.21.4"),
    }


def test_the_manifest_records_what_was_built(engine_bin: Path) -> None:
    manifest = json.loads((engine_bin / "manifest.json").read_text())
    assert manifest == {"pulumi": "3.274.0", "plugins": {"aws": "7.51.1", "docker": "5.2.0", "random": "4.21.4"}}


def test_the_aws_stand_in_is_given_the_replace_facts_of_every_aws_type_the_model_knows() -> None:
    replace = build.aws_replace_keys()
    assert replace["aws:s3/bucket:Bucket"] == ["bucket", "bucketPrefix", "objectLockEnabled"]
    assert replace["aws:secretsmanager/secretVersion:SecretVersion"] == ["secretId", "secretString", "secretBinary"]
    assert all(name.startswith("aws:") for name in replace)


def test_a_second_build_reuses_the_cached_binaries(engine_bin: Path) -> None:
    built_at = (engine_bin / "manifest.json").stat().st_mtime_ns
    done = subprocess.run(
        [str(build.REPO_ROOT / ".venv" / "bin" / "python"), "-m", "harness.pulumi_engine.build"],
        cwd=build.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert Path(done.stdout.strip()) == engine_bin
    assert (engine_bin / "manifest.json").stat().st_mtime_ns == built_at
