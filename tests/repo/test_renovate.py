"""Pinned things stay current and can't be swapped: every action is pinned by commit SHA (its
tag as a comment), and the update bot's config reaches every image the stacks run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.mock_engine import REPO_ROOT
from ops.images import declared_images

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v?\d[\w.-]*$")
APP_IMAGE = "ghcr.io/audit-x/audit_x"


def actions_not_pinned_by_sha(text: str) -> list[str]:
    """Every `uses:` of a third-party action that is not `owner/repo@<40 hex> # <tag>`."""
    found = []
    for match in re.finditer(r"uses:\s*(\S.*)$", text, re.MULTILINE):
        reference = match.group(1).strip()
        if reference.startswith(("./", "docker://")):
            continue  # a local workflow, or an image pinned elsewhere
        if not _PINNED.match(reference):
            found.append(reference)
    return found


@pytest.mark.parametrize("workflow", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit(workflow: Path) -> None:
    assert actions_not_pinned_by_sha(workflow.read_text()) == []


def test_an_action_pinned_by_tag_alone_is_caught() -> None:
    text = "steps:\n  - uses: actions/checkout@v4\n  - uses: actions/setup-python@" + "a" * 40 + " # v5.6.0\n"
    assert actions_not_pinned_by_sha(text) == ["actions/checkout@v4"]


def renovate() -> dict:
    return json.loads((REPO_ROOT / "renovate.json").read_text())


def python_pattern(javascript: str) -> re.Pattern[str]:
    """Renovate's regexes are JavaScript's: named groups are `(?<name>...)`."""
    return re.compile(javascript.replace("(?<", "(?P<"))


def tracked_images() -> set[str]:
    """repo:tag of every image the custom managers find in the files they look at."""
    found = set()
    for manager in renovate()["customManagers"]:
        if manager["datasourceTemplate"] != "docker":
            continue
        files = [p for p in REPO_ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
        matching = [
            p for p in files if any(re.search(f, p.relative_to(REPO_ROOT).as_posix()) for f in manager["fileMatch"])
        ]
        assert matching, manager["description"]
        for path in matching:
            for pattern in manager["matchStrings"]:
                for m in python_pattern(pattern).finditer(path.read_text()):
                    found.add(f"{m.group('depName')}:{m.group('currentValue')}")
    return found


def test_the_bot_tracks_every_image_the_stacks_run_but_the_apps() -> None:
    running = {image for image in declared_images() if not image.startswith(APP_IMAGE)}
    assert running <= tracked_images()
    assert any(
        rule.get("matchPackageNames") == [APP_IMAGE] and rule["enabled"] is False for rule in renovate()["packageRules"]
    )


def test_the_bot_keeps_actions_pinned_and_covers_every_pin_file() -> None:
    config = renovate()
    assert "helpers:pinGitHubActionDigests" in config["extends"]
    assert {"github-actions", "pip_requirements", "npm", "custom.regex"} <= set(config["enabledManagers"])
    pip_files = [
        "requirements.txt",
        "requirements-dev.txt",
        "constraints.txt",
        "runner/requirements.txt",
        "policy/requirements.txt",
    ]
    for name in pip_files:
        assert (REPO_ROOT / name).exists(), name
        assert any(re.search(f, name) for f in config["pip_requirements"]["fileMatch"]), name


def test_the_bot_tracks_pgbackrests_package() -> None:
    from components.settings.backup import PGBACKREST_VERSION  # noqa: PLC0415

    (manager,) = [m for m in renovate()["customManagers"] if m["datasourceTemplate"] == "deb"]
    assert manager["depNameTemplate"] == "pgbackrest" and "apt-archive.postgresql.org" in manager["registryUrlTemplate"]
    text = (REPO_ROOT / "components/settings/backup.py").read_text()
    (found,) = [m.group("currentValue") for m in python_pattern(manager["matchStrings"][0]).finditer(text)]
    assert found == PGBACKREST_VERSION
