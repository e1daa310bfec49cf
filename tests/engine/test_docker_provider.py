"""The bridged docker provider's update rules, watched on the Docker rig through the real engine.

One container (tests/engine/provider_program), changed one input at a time: what the engine
plans for each change, and what a refresh reads back. These are the facts the offline preview's
model (harness/provider_behaviour.yaml) is written from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.lib.durations import go_duration
from harness.docker_rig import catalogue
from harness.docker_rig.engine import Rig
from harness.docker_rig.images import RigImages
from harness.pulumi_engine.build import REPO_ROOT
from harness.pulumi_engine.cli import Workspace

PROGRAM = Path(__file__).with_name("provider_program")
STACK = "facts"
CONTAINER = "docker:index/container:Container"


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory, engine_bin: Path, docker_rig: Rig, rig_images: RigImages) -> Any:
    root = tmp_path_factory.mktemp("provider-facts")
    project = root / "project"
    shutil.copytree(PROGRAM, project)
    (project / ".venv").symlink_to(REPO_ROOT / ".venv")
    ws = Workspace.create(root, project_dir=project, bin_dir=engine_bin)
    ws.pulumi("stack", "init", STACK)
    config = {
        "host": docker_rig.host,
        "image": rig_images[catalogue.BASE],
        "interval": go_duration("60s"),
        "memory": "64",
        "label": "a",
    }
    for key, value in config.items():
        ws.pulumi("config", "set", "--stack", STACK, key, value)
    ws.pulumi("up", "--stack", STACK, "--yes", "--skip-preview")
    yield ws
    ws.pulumi("destroy", "--stack", STACK, "--yes", check=False)


def preview(ws: Workspace, **config: str) -> dict[str, Any]:
    """`pulumi preview --json` with `config` set for it alone (put back afterwards)."""
    before = {key: ws.pulumi("config", "get", "--stack", STACK, key).stdout.strip() for key in config}
    try:
        for key, value in config.items():
            ws.pulumi("config", "set", "--stack", STACK, key, value)
        return json.loads(ws.pulumi("preview", "--stack", STACK, "--json").stdout)
    finally:
        for key, value in before.items():
            ws.pulumi("config", "set", "--stack", STACK, key, value)


def ops_of(result: dict[str, Any], type_: str) -> list[str]:
    return [step["op"] for step in result["steps"] if step["urn"].split("::")[-2].endswith(type_)]


def state_of(ws: Workspace, type_: str) -> dict[str, Any]:
    exported = json.loads(ws.pulumi("stack", "export", "--stack", STACK).stdout)
    return next(r for r in exported["deployment"]["resources"] if r["type"] == type_)


def test_up_waits_for_the_container_to_be_healthy(facts: Workspace, docker_rig: Rig) -> None:
    health = docker_rig.docker("inspect", "--format", "{{.State.Health.Status}}", "audit-x-facts").stdout.strip()
    assert health == "healthy"


def test_no_change_previews_nothing_to_do(facts: Workspace) -> None:
    assert preview(facts)["changeSummary"] == {"same": 4}


def test_a_refresh_reads_the_health_check_durations_back_in_gos_format_and_then_previews_nothing(
    facts: Workspace,
) -> None:
    facts.pulumi("refresh", "--stack", STACK, "--yes", "--skip-preview")
    healthcheck = state_of(facts, CONTAINER)["outputs"]["healthcheck"]
    assert (healthcheck["interval"], healthcheck["timeout"], healthcheck["startPeriod"]) == ("1m0s", "5s", "30s")
    assert preview(facts)["changeSummary"] == {"same": 4}


def test_a_duration_not_in_gos_format_shows_as_a_change_of_an_unchanged_container(facts: Workspace) -> None:
    # The provider reads "60s" back as "1m0s": why the program writes every duration in Go's format.
    result = preview(facts, interval="60s")
    assert ops_of(result, CONTAINER) == ["update"]
    step = next(s for s in result["steps"] if s["urn"].endswith("::facts"))
    assert step["diffReasons"] == ["healthcheck"]


def test_a_memory_change_is_an_update_in_place(facts: Workspace) -> None:
    result = preview(facts, memory="96")
    assert ops_of(result, CONTAINER) == ["update"]


def test_a_health_check_change_is_an_update_the_container_never_sees(facts: Workspace, docker_rig: Rig) -> None:
    # The block is ForceNew at the bridged commit (96d331c98ff4), but its fields are not: a changed
    # interval plans an update, and the provider's Update never applies it to the container.
    result = preview(facts, interval=go_duration("30s"))
    assert ops_of(result, CONTAINER) == ["update"]
    step = next(s for s in result["steps"] if s["urn"].endswith("::facts"))
    assert step["detailedDiff"] == {"healthcheck.interval": {"kind": "update", "inputDiff": False}}
    inspect = ("inspect", "--format", "{{.Id}} {{.Config.Healthcheck.Interval}}", "audit-x-facts")
    before = docker_rig.docker(*inspect).stdout.split()
    facts.pulumi("config", "set", "--stack", STACK, "interval", go_duration("30s"))
    facts.pulumi("up", "--stack", STACK, "--yes", "--skip-preview")
    assert docker_rig.docker(*inspect).stdout.split() == before == [before[0], "60000000000"]  # ns: still 60 s
    assert state_of(facts, CONTAINER)["outputs"]["healthcheck"]["interval"] == "30s"


def test_a_label_change_replaces_the_fixed_name_container_deleting_the_old_one_first(
    facts: Workspace, docker_rig: Rig
) -> None:
    before = docker_rig.docker("inspect", "--format", "{{.Id}}", "audit-x-facts").stdout.strip()
    assert ops_of(preview(facts, label="b"), CONTAINER) == ["replace"]
    facts.pulumi("config", "set", "--stack", STACK, "label", "b")
    # `up --json` prints the engine's events, one JSON object a line, in the order they happen.
    events = facts.pulumi("up", "--stack", STACK, "--yes", "--skip-preview", "--json").stdout
    ops = [
        event["resourcePreEvent"]["metadata"]["op"]
        for event in map(json.loads, events.splitlines())
        if "resourcePreEvent" in event and event["resourcePreEvent"]["metadata"]["urn"].endswith("::facts")
    ]
    # pulumi-docker's DeleteBeforeReplace: the old container goes before the new one (same name).
    assert ops == ["delete-replaced", "replace", "create-replacement"]
    after = docker_rig.docker("inspect", "--format", "{{.Id}} {{.State.Health.Status}}", "audit-x-facts").stdout.split()
    assert after[0] != before
    assert after[1] == "healthy"
