"""The offline preview of a change: what `pulumi up` would do to the running stack.

    python -m ops.preview STACK [--from KEY=VALUE ...] [--set KEY=VALUE ...] [--rm KEY ...] [--json]
    python -m ops.preview STACK --from-preview FILE [--json]
    python -m ops.preview STACK --from-commit REV [--json]

Runs the program under mocks twice, with the stack's config as it is (the deployed stack, read
back as a refresh would) and with the changes (keys as `pulumi config set --path` takes them:
`app.image=registry.example/audit_x:1.2.4`, `rotation.postgres-password=2`), and applies the
providers' and the engine's update rules (harness/provider_behaviour.yaml, harness/update_model.py).
It prints the ordered steps and what they mean, then one line each, in this order:

    error=      protected resources the change would replace or delete (the engine refuses: exit 2)
    move=       a new Docker host: `old -> new` (every service down until it is moved by hand)
    state_only= inputs the provider writes to the state without applying them (`name.input`)
    removed=    services whose every container is removed on purpose
    degraded=   services that lose a dependency for a moment, and for how long at most
    replaced=N
    down=       services that have no running, ready container at some moment

each `none` when empty. `--from` describes a deployed stack whose config differs from the stack
file (a canary already running: `--from app.canary.image=... --from app.canary.weight=0`); `--set`
applies on top of it, and `--rm` removes a key or a list item (`pulumi config rm --path`, such as
`--rm 'app.workers[1]'`).

`--from-preview FILE` reads what `pulumi preview --json` printed instead (its steps: op, urn,
old and new state) and gives the same verdict for the real engine's steps; the PR preview
workflow posts those lines beside the diff. (Its secrets are masked, so that verdict covers
containers, order and routing, not credentials.) `--json` prints the same object either way
(steps with their URNs, `replaced_urns`, `delete_before_replace_urns`, ... then the verdict), so
the model's answer and the engine's can be compared key by key.

`--from-commit REV` previews a release of this program itself: the stack as the program at REV
declared it (run in a temporary git worktree) updated by the program as it is now.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.settings import ConfigError
from harness.mock_engine import REPO_ROOT, DeclaredResource, Plan, load_stack_config, run_program, stack_names
from harness.pulumi_engine.preview import normalized
from harness.update_model import OPS, Step, Verdict, analyse, verdict

NAMESPACE = "audit-x"


def apply_setting(config: dict[str, str], assignment: str) -> None:
    """`app.image=x` the way `pulumi config set --path app.image x` changes the stack's config."""
    path, sep, value = assignment.partition("=")
    if not sep or not path:
        raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE, such as app.image=registry.example/audit_x:1.2.4")
    head, *rest = path.split(".")
    key = head if ":" in head else f"{NAMESPACE}:{head}"
    if not rest:
        config[key] = value
        return
    document: Any = json.loads(config[key]) if key in config else {}
    if not isinstance(document, dict):
        raise SystemExit(f"--set {assignment!r}: {key} is not an object in the stack's config")
    node = document
    for part in rest[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SystemExit(f"--set {assignment!r}: {part} is not an object in {key}")
    node[rest[-1]] = value
    config[key] = json.dumps(document)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path_parts(path: str) -> list[str | int]:
    """`app.workers[1].name` -> ["app", "workers", 1, "name"], as `--path` reads it."""
    parts: list[str | int] = []
    position = 0
    for match in _PATH_PART.finditer(path):
        if match.start() != position and path[position : match.start()] != ".":
            raise SystemExit(f"--rm {path!r}: expected a path such as app.canary or app.workers[1]")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if position != len(path) or not parts or not isinstance(parts[0], str):
        raise SystemExit(f"--rm {path!r}: expected a path such as app.canary or app.workers[1]")
    return parts


def remove_setting(config: dict[str, str], path: str) -> None:
    """`app.canary` or `app.workers[1]` the way `pulumi config rm --path` removes it."""
    head, *rest = _path_parts(path)
    assert isinstance(head, str)
    key = head if ":" in head else f"{NAMESPACE}:{head}"
    if not rest:
        config.pop(key, None)
        return
    document = json.loads(config.get(key, "{}"))
    node: Any = document
    for part in rest[:-1]:
        node = _child(node, part)
    last = rest[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node.pop(last, None)
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node.pop(last)
    config[key] = json.dumps(document)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        return node.get(part, {})
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return {}


def changed_config(
    stack: str, assignments: Sequence[str], base: Sequence[str] = (), removals: Sequence[str] = ()
) -> dict[str, str]:
    config = load_stack_config(stack)
    for assignment in [*base, *assignments]:
        apply_setting(config, assignment)
    for path in removals:
        remove_setting(config, path)
    return config


def preview(stack: str, assignments: Sequence[str], base: Sequence[str] = (), removals: Sequence[str] = ()) -> Verdict:
    deployed = run_program(stack, config=changed_config(stack, [], base))
    changed = run_program(stack, config=changed_config(stack, assignments, base, removals))
    return verdict(deployed.resources, changed.resources)


# --- a release of the program itself: the plan of an earlier commit against this one ------------

# Run inside a checkout of the earlier commit: its own program, its own mock engine, the same venv.
_DUMP_PLAN = (
    "import dataclasses, json, sys\n"
    "from harness.mock_engine import run_program\n"
    "plan = run_program(sys.argv[1])\n"
    "with open(sys.argv[2], 'w') as out:\n"
    "    json.dump([dataclasses.asdict(r) for r in plan.resources], out, default=str)\n"
)


def plan_at_commit(stack: str, revision: str) -> list[DeclaredResource]:
    """What the program at `revision` declares for `stack` (its stack file at that revision too),
    from a temporary git worktree: the deployed state a release of this program starts from."""
    known = {f.name for f in dataclasses.fields(DeclaredResource)}
    with tempfile.TemporaryDirectory(prefix="audit-x-preview-") as tmp:
        tree, dump = Path(tmp) / "tree", Path(tmp) / "plan.json"
        added = subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), revision],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise SystemExit(f"--from-commit {revision!r}: {added.stderr.strip()}")
        try:
            subprocess.run(
                [sys.executable, "-c", _DUMP_PLAN, stack, str(dump)],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                check=True,
                capture_output=True,
                timeout=600,
            )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, check=False)
        return [DeclaredResource(**{k: v for k, v in r.items() if k in known}) for r in json.loads(dump.read_text())]


def release_preview(stack: str, revision: str) -> Verdict:
    """Deployed by the program at `revision`, updated by this one: what the release does."""
    return verdict(plan_at_commit(stack, revision), run_program(stack).resources)


# --- `pulumi preview --json` --------------------------------------------------------------------

_ENGINE_OPS = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "create-replacement": "create-replacement",
    "delete-replaced": "delete-replaced",
}


def _resource_from_state(state: Mapping[str, Any]) -> DeclaredResource:
    urn = str(state["urn"])
    # As the offline plan writes them: a secret masked, an unknown marked, the provider's defaults out.
    inputs = normalized(dict(state.get("inputs") or {}))
    return DeclaredResource(
        type=str(state.get("type") or urn.split("::")[-2].rsplit("$", 1)[-1]),
        name=urn.rsplit("::", 1)[-1],
        parent=None,
        parent_urn=state.get("parent"),
        inputs=inputs,
        plain_inputs=inputs,
        urn=urn,
        protect=bool(state.get("protect")),
        retain_on_delete=bool(state.get("retainOnDelete")),
        delete_before_replace=bool(state.get("deleteBeforeReplace")),
        dependencies=list(state.get("dependencies") or []),
        provider=state.get("provider"),
    )


def verdict_from_engine(document: Mapping[str, Any]) -> Verdict:
    """The verdict for the steps the real engine planned (`pulumi preview --json`).

    The document lists steps in the engine's order. A replacement appears as its
    `create-replacement` and `delete-replaced` steps (the order says which comes first), or as the
    logical `replace` alone, which stands for create-then-delete (the delete at the end).
    """
    entries = list(document.get("steps", []))
    old = [_resource_from_state(e["oldState"]) for e in entries if e.get("oldState")]
    detailed = {(e.get("urn"), e.get("op")) for e in entries}
    steps: list[Step] = []
    deferred: list[Step] = []
    for entry in entries:
        old_state, new_state, urn = entry.get("oldState"), entry.get("newState"), entry.get("urn")
        why = list(entry.get("replaceReasons") or entry.get("diffReasons") or [])
        op = str(entry.get("op"))
        if op == "replace":
            if (urn, "create-replacement") not in detailed and new_state:
                steps.append(Step("create-replacement", _resource_from_state(new_state), why))
            if (urn, "delete-replaced") not in detailed and old_state:
                deferred.append(Step("delete-replaced", _resource_from_state(old_state), why))
            continue
        if op not in _ENGINE_OPS:
            continue  # same, read, refresh: nothing happens to a running container
        state = new_state if op in ("create", "create-replacement", "update") else old_state
        if state:
            steps.append(Step(op, _resource_from_state(state), why))
    steps += deferred
    # Delete-first: the old one of a replacement went before its replacement was created.
    created_at = {s.resource.urn: i for i, s in enumerate(steps) if s.op == "create-replacement"}
    for index, step in enumerate(steps):
        if step.op == "delete-replaced" and index < created_at.get(step.resource.urn, -1):
            step.delete_first = True
            steps[created_at[step.resource.urn]].delete_first = True
    return analyse(old, steps, credentials=False)


def render(result: Verdict) -> str:
    return "\n".join(result.lines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.preview", description="The offline preview of a change.")
    parser.add_argument("stack", choices=stack_names())
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--from", dest="base", action="append", default=[], metavar="KEY=VALUE", help="the deployed stack's config"
    )
    parser.add_argument("--rm", dest="removals", action="append", default=[], metavar="KEY", help="a key to remove")
    parser.add_argument("--from-preview", type=Path, metavar="FILE", help="the output of `pulumi preview --json`")
    parser.add_argument(
        "--from-commit", metavar="REV", help="the stack as an earlier commit of this program deployed it"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        if args.from_preview:
            result = verdict_from_engine(json.loads(args.from_preview.read_text()))
        elif args.from_commit:
            result = release_preview(args.stack, args.from_commit)
        else:
            result = preview(args.stack, args.assignments, args.base, args.removals)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    if args.json:
        document = result.as_json()
        assert all(step["op"] in OPS for step in document["steps"])
        print(json.dumps(document, indent=2))
    else:
        print(render(result))
    # The engine refuses these steps (`pulumi preview` fails too): a script must not read on.
    return 2 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Plan", "apply_setting", "preview", "verdict_from_engine"]
