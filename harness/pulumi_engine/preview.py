"""Reading `pulumi preview --json` and setting it beside the offline plan (harness.mock_engine).

The engine's JSON marks a secret with Pulumi's signature object and a value not known before the
update with its unknown sentinel; a provider's Check adds defaults it lists under `__defaults`.
`engine_inputs` turns those into the offline plan's forms ("[secret]", UNKNOWN, no defaults), so
the two can be compared key by key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.mock_engine import MASK, Plan

SECRET_SIG = "4dabf18193072939515e22adb298388d"
UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
UNKNOWN = "[unknown]"


def type_and_name(urn: str) -> tuple[str, str]:
    qualified_type, name = urn.split("::")[-2:]
    return qualified_type.split("$")[-1], name


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return MASK
        defaults = set(value.get("__defaults", []))
        return {k: normalized(v) for k, v in value.items() if k not in defaults and k != "__defaults"}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return UNKNOWN if value == UNKNOWN_SENTINEL else value


def engine_inputs(preview: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource the preview would create or read, by type and name: its inputs as the
    provider checked them, normalized."""
    return {
        type_and_name(step["urn"]): normalized(step["newState"].get("inputs", {}))
        for step in preview["steps"]
        if "newState" in step
    }


def _holds_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return value == MASK


def agree(engine: Any, offline: Any) -> bool:
    """The engine's value is the plan's, or not known yet, or a secret wrapping one the plan
    masks inside (the engine marks a whole list secret where one element holds a secret)."""
    if engine == UNKNOWN or (engine == MASK and _holds_secret(offline)):
        return True
    if isinstance(engine, dict) and isinstance(offline, dict):
        return engine.keys() == offline.keys() and all(agree(engine[k], offline[k]) for k in engine)
    if isinstance(engine, list) and isinstance(offline, list):
        return len(engine) == len(offline) and all(agree(e, o) for e, o in zip(engine, offline, strict=True))
    return engine == offline


def disagreements(preview: dict[str, Any], plan: Plan, ignore: frozenset[str] = frozenset()) -> Iterator[str]:
    """`TYPE NAME KEY` for every input of a resource of the plan where the engine says otherwise."""
    engine = engine_inputs(preview)
    for resource in plan.resources:
        if resource.type.startswith("pulumi:"):
            continue
        inputs = {k: v for k, v in engine[(resource.type, resource.name)].items() if k not in ignore}
        for key in sorted(inputs.keys() | resource.inputs.keys()):
            if not agree(inputs.get(key), resource.inputs.get(key)):
                yield f"{resource.type} {resource.name} {key}"
