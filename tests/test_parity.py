"""Staging and prod are one program: they differ only in what their config says."""

from __future__ import annotations

from typing import Any

from tools.mock_engine import Plan, load_stack_config, run_program


def shape(plan: Plan, environment: str) -> set[tuple[str, str]]:
    """(type, name) of each resource with the environment's name taken out."""
    return {(r.type, r.name.replace(f"-{environment}", "-ENV")) for r in plan.resources}


def comparable(plan: Plan) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "type": r.type,
                "name": r.name,
                # The synthetic root is named after the stack; everything below it after config.
                "parent": "<stack>" if (r.parent_urn or "").split("::")[-2:-1] == ["pulumi:pulumi:Stack"] else r.parent,
                "inputs": r.inputs,
                "protect": r.protect,
                "retain": r.retain_on_delete,
                "deps": sorted(d.rsplit("::", 1)[-1] for d in r.dependencies),
            }
            for r in plan.resources
        ),
        key=lambda r: (r["type"], r["name"]),
    )


def test_both_stacks_declare_the_same_resources_apart_from_replica_counts(plans: dict[str, Plan]) -> None:
    staging, prod = shape(plans["staging"], "staging"), shape(plans["prod"], "prod")
    # Replicas are a config value: prod runs more web and sidekiq containers than staging.
    replicas = {("docker:index/container:Container", n) for n in ("audit-x-ENV-web-1", "audit-x-ENV-web-2")}
    replicas.add(("docker:index/container:Container", "audit-x-ENV-worker-sidekiq-1"))
    assert staging - prod == set()
    assert prod - staging == replicas


def test_every_difference_between_the_stacks_is_a_config_value(plans: dict[str, Plan]) -> None:
    # No code path looks at the stack's name: each stack given the other's config declares
    # exactly what the other declares, resource for resource, input for input.
    for stack, other in (("staging", "prod"), ("prod", "staging")):
        swapped = run_program(stack, config=load_stack_config(other))
        assert comparable(swapped) == comparable(plans[other]), f"{stack} with {other}'s config"
        assert swapped.outputs == plans[other].outputs
