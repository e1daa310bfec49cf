"""The offline plan: what a stack would declare, with no cloud, no CLI and no credentials.

    python -m ops.plan STACK          a tree of what each component declares
    python -m ops.plan STACK --json   one JSON object: {"stack", "resources", "outputs"}

Runs the real program under the mock engine with the stack's real config. Secret values are
shown as [secret]. Exits 1 with the settings' message when the config is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from components.lib import tokens
from components.settings import ConfigError
from harness.mock_engine import DeclaredResource, Plan, run_program, stack_names


def _short_type(type_: str) -> str:
    """`docker:index/container:Container` -> `docker:Container`; components keep their token."""
    if type_.startswith("audit-x:"):
        return type_
    package, _, rest = type_.partition(":")
    return f"{package}:{rest.rsplit(':', 1)[-1]}"


def _container_summary(inputs: dict[str, Any]) -> str:
    health = "health check" if inputs.get("healthcheck") else "NO HEALTH CHECK"
    networks = ",".join(str(n.get("name")) for n in inputs.get("networksAdvanced", []))
    kind = "one-shot" if inputs.get("attach") else f"restart={inputs.get('restart')}"
    ports = inputs.get("ports") or []
    published = f", publishes {len(ports)} port(s)" if ports else ""
    return f"{kind}, {inputs.get('memory')} MB, {health}, networks={networks}{published}"


_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    tokens.CONTAINER: _container_summary,
    tokens.REMOTE_IMAGE: lambda i: str(i.get("name")),
    tokens.NETWORK: lambda i: "internal" if i.get("internal") else "with outbound access",
    tokens.VOLUME: lambda i: str(i.get("name")),
    tokens.SECRET: lambda i: f"{i.get('name')}, recovery window {i.get('recoveryWindowInDays')} d",
    tokens.BUCKET: lambda i: str(i.get("bucket")),
    tokens.BUCKET_LIFECYCLE: lambda i: ", ".join(str(rule.get("id")) for rule in i.get("rules", [])),
    tokens.KMS_KEY: lambda i: f"rotation {'on' if i.get('enableKeyRotation') else 'OFF'}",
    "pulumi:providers:docker": lambda i: f"host {i.get('host')}",
    "pulumi:providers:aws": lambda i: f"region {i.get('region')}",
}


def _line(resource: DeclaredResource) -> str:
    summary = _SUMMARIES.get(resource.type)
    flags = " [protected]" if resource.protect else ""
    detail = f"  ({summary(resource.inputs)})" if summary else ""
    return f"{_short_type(resource.type)}  {resource.name}{flags}{detail}"


def render_tree(plan: Plan) -> str:
    children: dict[str | None, list[DeclaredResource]] = {}
    for resource in plan.resources:
        children.setdefault(resource.parent_urn, []).append(resource)
    for siblings in children.values():
        # Components first, then by type and name: the same order on every run.
        siblings.sort(key=lambda r: (not r.type.startswith("audit-x:"), r.type, r.name))

    lines = [f"Stack {plan.stack}: {len(plan.resources)} resources"]

    def walk(parent: str | None, prefix: str) -> None:
        siblings = children.get(parent, [])
        for index, resource in enumerate(siblings):
            last = index == len(siblings) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{_line(resource)}")
            walk(resource.urn, prefix + ("   " if last else "│  "))

    roots = {r.parent_urn for r in plan.resources} - {r.urn for r in plan.resources}
    for root in sorted(root for root in roots if root is not None):
        lines.append(root.rsplit("::", 2)[-2] + "  " + root.rsplit("::", 1)[-1])
        walk(root, "")
    lines.append("")
    lines.append("Outputs:")
    for key, value in plan.outputs.items():
        lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.plan", description="The offline plan of a stack.")
    parser.add_argument("stack", choices=stack_names(), help="the stack whose Pulumi.<stack>.yaml to plan")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a tree")
    args = parser.parse_args(argv)
    try:
        plan = run_program(args.stack)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)  # as `pulumi preview` prints them
    if args.json:
        document = plan.as_json()
        document["resources"].sort(key=lambda r: (r["parent"] or "", r["type"], r["name"]))
        print(json.dumps(document, indent=2, sort_keys=False))
    else:
        print(render_tree(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
