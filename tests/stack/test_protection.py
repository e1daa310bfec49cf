"""Stateful resources are protected and retained where config says so (prod), and only they."""

from __future__ import annotations

from components.lib import tokens
from harness.mock_engine import Plan, load_stack_config, run_program

STATEFUL_TYPES = {
    tokens.VOLUME,
    tokens.BUCKET,
    tokens.SECRET,
    tokens.KMS_KEY,
}


def stateful(plan: Plan) -> list:
    return [r for r in plan.resources if r.type in STATEFUL_TYPES]


def test_prod_protects_and_retains_every_stateful_resource(plans: dict[str, Plan]) -> None:
    resources = stateful(plans["prod"])
    assert len(resources) >= 12
    for resource in resources:
        assert resource.protect, resource.name
        assert resource.retain_on_delete, resource.name


def test_staging_protects_nothing(plans: dict[str, Plan]) -> None:
    assert [r.name for r in plans["staging"].resources if r.protect or r.retain_on_delete] == []


def test_stateless_resources_are_never_protected(plans: dict[str, Plan]) -> None:
    # Containers and images must stay replaceable, or no deploy could ever roll out.
    for resource in plans["prod"].resources:
        if resource.type not in STATEFUL_TYPES:
            assert not resource.protect, resource.name


def test_protection_follows_config_not_the_stack_name() -> None:
    config = load_stack_config("staging") | {"audit-x:protectStatefulResources": "true"}
    plan = run_program("staging", config=config)
    assert all(r.protect for r in stateful(plan))


def test_fixed_name_containers_are_replaced_delete_first_and_app_roles_new_first(plans: dict[str, Plan]) -> None:
    # Docker refuses two containers of one name: a fixed-name container must go before its
    # replacement comes. Web and workers carry the release in their name, so the new version
    # is created, and healthy, before the old one is removed.
    for resource in plans["prod"].of_type(tokens.CONTAINER):
        per_release = resource.inputs["name"] != resource.name
        assert resource.delete_before_replace is not per_release, resource.name
    app_roles = [r for r in plans["prod"].of_type(tokens.CONTAINER) if "-web-" in r.name or "-worker-" in r.name]
    assert len(app_roles) == 6
    assert all(r.inputs["name"] != r.name for r in app_roles)
