"""The providers' update rules kept as data (harness/provider_behaviour.yaml) cover every resource
type and input the program uses, and each rule names where upstream it comes from."""

from __future__ import annotations

import re

import pytest

from components.lib import tokens
from components.lib.durations import go_duration, parse_seconds
from harness.mock_engine import Plan
from harness.update_model import behaviour, classify, is_component, read_back, type_rules
from tests.helpers import container


def used(plans: dict[str, Plan]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for plan in plans.values():
        for resource in plan.resources:
            if not is_component(resource):
                found.setdefault(resource.type, set()).update(resource.inputs)
    return found


def test_every_type_and_input_the_program_uses_is_covered(plans: dict[str, Plan]) -> None:
    missing = []
    for type_, inputs in sorted(used(plans).items()):
        rules = behaviour()["types"].get(type_)
        if rules is None:
            missing.append(type_)
            continue
        known = set(rules["replace"]) | set(rules["update"])
        missing += [f"{type_}.{name}" for name in sorted(inputs - known)]
    assert missing == [], f"add what the provider does on update for: {missing}"


def test_every_rule_names_its_upstream_source_and_default() -> None:
    for type_, rules in behaviour()["types"].items():
        assert rules["source"].strip(), type_
        assert isinstance(rules["delete_before_replace"], bool), type_
        assert not set(rules["replace"]) & set(rules["update"]), type_
    assert "step_generator.go" in behaviour()["engine"]["source"]


def test_the_facts_the_issue_rests_on() -> None:
    rules = type_rules(tokens.CONTAINER)
    assert rules["delete_before_replace"] is True  # pulumi-docker provider/resources.go
    assert {"labels", "name", "uploads", "envs", "image"} <= set(rules["replace"])
    assert {"memory", "healthcheck", "waitTimeout"} <= set(rules["update"])
    assert rules["timeouts"]["create"] == 1200
    assert rules["read_back"]["healthcheck.startPeriod"] == "go_duration"


def test_state_only_and_moving_inputs_are_in_place_updates_of_their_type() -> None:
    for type_, rules in behaviour()["types"].items():
        assert set(rules.get("state_only") or {}) <= set(rules["update"]), type_
        assert set(rules.get("moves") or []) <= set(rules["update"]), type_
        assert all(str(why).strip() for why in (rules.get("state_only") or {}).values()), type_


def test_the_container_update_applies_only_restart_memory_and_must_run() -> None:
    """resource_docker_container_funcs.go:991-1077: of the in-place inputs the program uses, only
    these reach a running container; every other is written to the state alone."""
    rules = type_rules(tokens.CONTAINER)
    applied = set(rules["update"]) - set(rules["state_only"])
    assert applied == {"restart", "memory", "memorySwap", "mustRun"}
    assert {"healthcheck", "init", "rm", "start", "logs", "wait", "waitTimeout", "destroyGraceSeconds"} <= set(
        rules["state_only"]
    )


def test_a_new_docker_host_moves_and_a_remote_images_build_replaces() -> None:
    provider = type_rules("pulumi:providers:docker")
    assert provider["moves"] == ["host"] and "host" not in provider["replace"]
    assert "build" in type_rules(tokens.REMOTE_IMAGE)["replace"]
    rules = " ".join(behaviour()["engine"]["rules"])
    for fact in ("protected", "replace_on_changes", "URN::ID", "pulumi state unprotect"):
        assert fact in rules, fact


def test_replace_on_changes_turns_an_in_place_input_into_a_replacement(plans: dict[str, Plan]) -> None:
    postgres = container(plans["prod"], "postgres")
    assert postgres.replace_on_changes == ["healthcheck", "init"]
    assert classify(postgres, ["healthcheck", "memory"]) == (["healthcheck"], ["memory"])
    web = container(plans["prod"], "web-0")
    assert classify(web, ["healthcheck", "memory"]) == ([], ["healthcheck", "memory"])


def test_an_input_the_data_does_not_know_is_refused_by_name(plans: dict[str, Plan]) -> None:
    resource = next(r for r in plans["prod"].resources if r.type == tokens.CONTAINER)
    with pytest.raises(KeyError, match=re.escape("Container input(s) somethingNew are not in provider_behaviour.yaml")):
        classify(resource, ["memory", "somethingNew"])


def test_an_unknown_type_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match=re.escape("docker:index/service:Service is not in provider_behaviour.yaml")):
        type_rules("docker:index/service:Service")


@pytest.mark.parametrize(
    ("written", "read_back_as"),
    [("10s", "10s"), ("60s", "1m0s"), ("90s", "1m30s"), ("1800s", "30m0s"), ("3600s", "1h0m0s"), ("0s", "0s")],
)
def test_durations_read_back_as_go_prints_them(written: str, read_back_as: str) -> None:
    assert go_duration(written) == read_back_as
    assert go_duration(read_back_as) == read_back_as
    assert parse_seconds(read_back_as) == parse_seconds(written)


def test_a_duration_docker_would_not_take_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration: '5 minutes'"):
        parse_seconds("5 minutes")


def test_read_back_rewrites_only_the_durations(plans: dict[str, Plan]) -> None:
    web = plans["prod"].named("audit-x-prod-web-0")
    state = read_back(web)
    assert state["healthcheck"] == web.plain_inputs["healthcheck"]  # already written as Go prints it
    assert {k: v for k, v in state.items() if k != "healthcheck"} == {
        k: v for k, v in web.plain_inputs.items() if k != "healthcheck"
    }
