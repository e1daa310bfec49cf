"""Run the policy pack over everything a stack declares, with no CLI and no cloud.

    python -m ops.policy STACK [--config FILE.json]

The stack is planned under the mock engine (harness.mock_engine), each declared resource is handed
to the pack's policies as `pulumi preview` would hand it, with the stack's policy config
(`policy/config.<stack>.json`), and every violation is printed: policy, resource, why. The last
line is `violations=N` (mandatory policies; advisory ones are printed, prefixed `advisory:`,
and do not count); the exit status is 1 when N > 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components.settings import ConfigError
from harness import pulumi_sdk
from harness.mock_engine import REPO_ROOT, DeclaredResource, Plan, run_program, stack_names
from policy.rules import POLICIES


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str
    advisory: bool = False

    def __str__(self) -> str:
        prefix = "advisory: " if self.advisory else ""
        return f"{prefix}{self.policy}: {self.resource}: {self.message}"


def policy_config(stack: str, path: Path | None = None) -> dict[str, dict[str, Any]]:
    config_file = path or REPO_ROOT / "policy" / f"config.{stack}.json"
    return json.loads(config_file.read_text()) if config_file.exists() else {}


def _options(resource: DeclaredResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=[],
        delete_before_replace=resource.delete_before_replace,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent_urn,
    )


def _policy_resources(plan: Plan) -> list[PolicyResource]:
    """The resources as stack policies get them: with their outputs (a key's ARN, a bucket's),
    which the mock engine made up as a provider would."""
    by_urn: dict[str, PolicyResource] = {}
    for resource in plan.resources:
        by_urn[resource.urn] = PolicyResource(
            resource_type=resource.type,
            props=pulumi_sdk.unknown_checking_proxy(resource.plain_outputs),
            urn=resource.urn,
            name=resource.name,
            opts=_options(resource),
            provider=None,
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
    for resource in plan.resources:
        parent = by_urn.get(resource.parent_urn or "")
        if parent is not None:
            by_urn[resource.urn].parent = parent
    return list(by_urn.values())


def check(plan: Plan, config: dict[str, dict[str, Any]]) -> list[Violation]:
    violations: list[Violation] = []
    resources = _policy_resources(plan)
    for policy in POLICIES:
        settings = config.get(policy.name, {})

        advisory = policy.enforcement_level == EnforcementLevel.ADVISORY

        def report(message: str, urn: str | None, policy_name: str = policy.name, advisory: bool = advisory) -> None:
            resource = (urn or "").rsplit("::", 1)[-1] or "(stack)"
            violations.append(Violation(policy_name, resource, message, advisory))

        def cannot_run(error: Exception, policy_name: str = policy.name) -> None:
            # What the SDK does with an unknown value: an advisory note, never a violation.
            unknown = getattr(error, "message", "") or str(error)
            violations.append(
                Violation(policy_name, "(preview)", f"can't run during preview: {unknown}", advisory=True)
            )

        if isinstance(policy, ResourceValidationPolicy):
            # Resource policies judge the inputs, as `pulumi preview` hands them over.
            for resource, declared in zip(resources, plan.resources, strict=True):
                args = ResourceValidationArgs(
                    resource.resource_type,
                    pulumi_sdk.unknown_checking_proxy(declared.plain_inputs),
                    resource.urn,
                    resource.name,
                    resource.opts,
                    None,
                    settings,
                )
                try:
                    policy.validate(args, lambda message, urn, subject=resource.urn: report(message, urn or subject))
                except pulumi_sdk.UnknownValueError as error:
                    cannot_run(error)
        elif isinstance(policy, StackValidationPolicy):
            try:
                policy.validate(StackValidationArgs(resources, settings), report)
            except pulumi_sdk.UnknownValueError as error:
                cannot_run(error)
    return violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.policy", description="Run the policy pack over a stack.")
    parser.add_argument("stack", choices=stack_names())
    parser.add_argument("--config", type=Path, help="policy config (default: policy/config.<stack>.json)")
    args = parser.parse_args(argv)
    try:
        plan = run_program(args.stack)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    found = check(plan, policy_config(args.stack, args.config))
    for violation in found:
        print(violation)
    mandatory = [v for v in found if not v.advisory]
    print(f"violations={len(mandatory)}")
    return 1 if mandatory else 0


if __name__ == "__main__":
    sys.exit(main())
