"""Staging and prod are one program: they differ only in what their config says."""

from __future__ import annotations

from typing import Any

from components.lib import tokens
from harness.mock_engine import Plan, load_stack_config, run_program


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


# Staging's seed is a config value too (stagingSeed): prod makes seeds, staging reads them.
SEED_SOURCE = {
    ("audit-x:backup:StagingSeedSource", "audit-x-ENV-staging-seed"),
    (tokens.KMS_KEY, "audit-x-ENV-staging-seed"),
    (tokens.KMS_ALIAS, "audit-x-ENV-staging-seed-alias"),
    (tokens.RANDOM_PASSWORD, "audit-x-ENV-staging-seed-masking-key"),
    (tokens.SECRET, "audit-x-ENV-secret-staging-seed-masking-key"),
    (tokens.SECRET_VERSION, "audit-x-ENV-secret-staging-seed-masking-key-version"),
}
SEED_READER = {
    ("audit-x:backup:StagingSeedReader", "audit-x-ENV-seed-reader"),
    ("pulumi:pulumi:StackReference", "audit-x-ENV-seed-reader-source"),
    ("audit-x:platform:AccessKeyIdentity", "audit-x-ENV-seed-reader"),
    (tokens.IAM_USER, "audit-x-ENV-seed-reader"),
    (tokens.IAM_USER_POLICY, "audit-x-ENV-seed-reader-policy"),
    (tokens.IAM_ACCESS_KEY, "audit-x-ENV-seed-reader-key"),
    (tokens.SECRET, "audit-x-ENV-secret-seed-reader-access-key"),
    (tokens.SECRET_VERSION, "audit-x-ENV-secret-seed-reader-access-key-version"),
}


def test_both_stacks_declare_the_same_resources_apart_from_replica_counts(plans: dict[str, Plan]) -> None:
    staging, prod = shape(plans["staging"], "staging"), shape(plans["prod"], "prod")
    # Replicas are a config value: prod runs more web and sidekiq containers than staging.
    replicas = {(tokens.CONTAINER, n) for n in ("audit-x-ENV-web-1", "audit-x-ENV-web-2")}
    replicas.add((tokens.CONTAINER, "audit-x-ENV-worker-sidekiq-1"))
    assert staging - prod == SEED_READER
    assert prod - staging == replicas | SEED_SOURCE


def test_every_difference_between_the_stacks_is_a_config_value(plans: dict[str, Plan]) -> None:
    # No code path looks at the stack's name: each stack given the other's config declares
    # exactly what the other declares, resource for resource, input for input.
    for stack, other in (("staging", "prod"), ("prod", "staging")):
        swapped = run_program(stack, config=load_stack_config(other))
        assert comparable(swapped) == comparable(plans[other]), f"{stack} with {other}'s config"
        assert swapped.outputs == plans[other].outputs
