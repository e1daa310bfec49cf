"""A stand-in for the `docker` CLI, for the operator commands' tests: it answers `ps`, `inspect`,
`exec`, `logs`, `start` and `stop` from a JSON file describing a host's containers, and records
every call. The real thing is tested on the Docker engine rig; this one lets the tests put a host
in any state (a container unhealthy, a job failed, a backup stale) in a millisecond.

    FAKE_DOCKER_STATE=host.json FAKE_DOCKER_CALLS=calls.jsonl python -m harness.fake_docker_cli ARGS

host.json: {"containers": [{"name", "image", "state", "health", "exit_code", "labels", "logs"}],
            "exec": {"<command joined by spaces>": {"stdout": "...", "exit": 0}}}
tests/helpers.py's `fake_host` makes one from a plan: every container the plan declares, running
and healthy (jobs exited 0), under its declared name, image and labels.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a program for every `docker` call: it imports nothing beyond the standard library.
REPO_ROOT = Path(__file__).resolve().parents[1]


def install(directory: Path, host: dict[str, Any]) -> dict[str, str]:
    """A `docker` on PATH in `directory` serving `host`; the environment to run commands with."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "docker"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness.fake_docker_cli "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    state = directory / "host.json"
    state.write_text(json.dumps(host))
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "FAKE_DOCKER_STATE": str(state),
        "FAKE_DOCKER_CALLS": str(directory / "calls.jsonl"),
    }


def calls(environ: dict[str, str]) -> list[list[str]]:
    path = Path(environ["FAKE_DOCKER_CALLS"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _matches(container: dict[str, Any], filters: list[str]) -> bool:
    for spec in filters:
        key, _, value = spec.removeprefix("label=").partition("=")
        if container["labels"].get(key) != value:
            return False
    return True


def _inspect(container: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {"Status": container["state"], "ExitCode": container["exit_code"], "StartedAt": ""}
    if container.get("health"):
        state["Health"] = {"Status": container["health"]}
    return {
        "Name": "/" + container["name"],
        "State": state,
        "Config": {"Image": container["image"], "Labels": container["labels"]},
    }


def _ps(host: dict[str, Any], rest: list[str]) -> int:
    filters = [rest[i + 1] for i, arg in enumerate(rest) if arg == "--filter"]
    for container in host["containers"]:
        if ("--all" in rest or container["state"] == "running") and _matches(container, filters):
            print(container["name"])
    return 0


def _inspect_all(host: dict[str, Any], rest: list[str]) -> int:
    by_name = {c["name"]: c for c in host["containers"]}
    missing = [name for name in rest if name not in by_name]
    if missing:
        print(f"Error: No such object: {missing[0]}", file=sys.stderr)
        return 1
    print(json.dumps([_inspect(by_name[name]) for name in rest]))
    return 0


def _exec(host: dict[str, Any], rest: list[str]) -> int:
    while rest and rest[0].startswith("-"):
        rest = rest[1:]
    name, cmd = rest[0], rest[1:]
    if not any(c["name"] == name and c["state"] == "running" for c in host["containers"]):
        print(f"Error response from daemon: container {name} is not running", file=sys.stderr)
        return 1
    answer = host["exec"].get(" ".join(cmd), {"stdout": "", "exit": 0})
    sys.stdout.write(answer["stdout"])
    return int(answer["exit"])


def _logs(host: dict[str, Any], rest: list[str]) -> int:
    (container,) = [c for c in host["containers"] if c["name"] == rest[-1]]
    for line in container["logs"]:
        print(line, file=sys.stderr if "stderr" in line else sys.stdout)
    return 0


def _start_stop(host: dict[str, Any], rest: list[str], *, running: bool) -> int:
    if "--attach" in rest:  # a one-shot job run again: it exits with its recorded exit code
        (job,) = [c for c in host["containers"] if c["name"] == rest[-1]]
        return int(job["exit_code"])
    for container in host["containers"]:
        if container["name"] in rest:
            container["state"] = "running" if running else "exited"
    Path(os.environ["FAKE_DOCKER_STATE"]).write_text(json.dumps(host))
    return 0


def _image(host: dict[str, Any], rest: list[str]) -> int:
    """`image inspect --format {{json .RepoTags}} ID`: the tags `host["images"]` gives the id."""
    tags = host.get("images", {}).get(rest[-1])
    if tags is None:
        print(f"Error: No such image: {rest[-1]}", file=sys.stderr)
        return 1
    print(json.dumps(tags))
    return 0


COMMANDS = {
    "image": _image,
    "ps": _ps,
    "inspect": _inspect_all,
    "exec": _exec,
    "logs": _logs,
    "start": lambda host, rest: _start_stop(host, rest, running=True),
    "stop": lambda host, rest: _start_stop(host, rest, running=False),
    "restart": lambda host, rest: _start_stop(host, rest, running=True),
}


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    with open(os.environ["FAKE_DOCKER_CALLS"], "a", encoding="utf-8") as log:
        log.write(json.dumps(args) + "\n")
    if args[:1] == ["--host"]:
        args = args[2:]
    host = json.loads(Path(os.environ["FAKE_DOCKER_STATE"]).read_text())
    handler = COMMANDS.get(args[0])
    if handler is None:
        print(f"fake docker: {args[0]} is not served", file=sys.stderr)
        return 125
    return handler(host, args[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
