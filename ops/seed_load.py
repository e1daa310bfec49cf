"""Load prod's newest masked seed into staging, with the app stopped, and run the app's migrations.

    python -m ops.seed_load STACK [--seed KEY]      load the newest seed (or KEY)
    python -m ops.seed_load STACK --undo            put the data from before the last load back

Weekly from .github/workflows/staging-seed.yml, and on demand (the same workflow, or this command
on a machine whose SSH key reaches the stack's Docker host). The steps, on the host of the stack
(`dockerHost` in its config), with the Docker CLI:

1. The backup runner restores the seed beside the live database (`python -m runner seed-load
   --stage`) and checks its row counts against the seed's manifest. The app still runs.
2. The app's running containers (label io.audit-x.service=app) are stopped.
3. The runner swaps the databases (`seed-load --swap`): the seed takes the live name, the old
   data is kept as `<db>_before_seed`.
4. The migration job's container runs again (`docker start --attach`): the seed has prod's
   schema, and staging's app may be a release ahead. It must exit 0.
5. The app's containers start again and must be healthy within `--health-timeout`.

A failure in 3 to 5 swaps the data back (`seed-load --undo`) and starts the app again: staging
is never left stopped, nor on a seed its app cannot run on. Stopped containers that this command
could not start again are started by the next `pulumi up`: the provider reads a stopped container
that must run as `must_run = false` and starts it (terraform-provider-docker v4.5.0,
resource_docker_container_funcs.go, read and update). Exit status: 0 loaded (or undone), 1 failed
(and put back), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from components.lib.tokens import LABEL_PREFIX
from components.settings import ConfigError, load_settings
from harness.mock_engine import load_stack_config, stack_names
from ops.docker_host import DockerHost, HostError

RUNNER = ["python", "-m", "runner"]
DEFAULT_HEALTH_TIMEOUT_SECONDS = 300


class SeedLoadError(HostError):
    """A load that failed: the message says where, and what was put back."""


class Host(Protocol):
    """What the load needs of the Docker host (the Docker CLI, or a stand-in in the tests)."""

    def containers(self, labels: dict[str, str], *, running: bool) -> list[str]: ...

    def exec_json(self, container: str, argv: Sequence[str]) -> dict[str, Any]:
        """Run a command in a container; its stdout as JSON. Raise HostError when it fails."""
        ...

    def stop(self, names: Sequence[str]) -> None: ...

    def start(self, names: Sequence[str]) -> None: ...

    def run_to_completion(self, name: str) -> int:
        """Start an exited one-shot container, wait for it, and return its exit code."""
        ...

    def healthy(self, name: str) -> bool | None:
        """True healthy, False unhealthy or stopped, None still starting."""
        ...


@dataclass
class SeedLoad:
    host: Host
    environment: str
    health_timeout_seconds: float = DEFAULT_HEALTH_TIMEOUT_SECONDS
    report: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    steps: list[str] = field(default_factory=list)

    def _labels(self, **extra: str) -> dict[str, str]:
        return {f"{LABEL_PREFIX}.environment": self.environment} | {f"{LABEL_PREFIX}.{k}": v for k, v in extra.items()}

    def _one(self, **labels: str) -> str:
        found = self.host.containers(self._labels(**labels), running=labels.get("role") != "migrate")
        if len(found) != 1:
            raise SeedLoadError(f"expected one container labelled {labels} in {self.environment}, found {found}")
        return found[0]

    def _say(self, line: str) -> None:
        self.steps.append(line)
        self.report(line)

    def load(self, seed: str | None) -> dict[str, Any]:
        runner = self._one(service="backup", role="scheduler")
        migrate = self._one(service="app", role="migrate")
        staged = self.host.exec_json(runner, [*RUNNER, "seed-load", "--stage", *([seed] if seed else [])])
        seed_key = staged["staged"]["seed"]
        self._say(f"staged {seed_key} beside the live database: {sum(staged['staged']['row_counts'].values())} rows")
        app = self.host.containers(self._labels(service="app"), running=True)
        self.host.stop(app)
        self._say(f"stopped the app: {', '.join(app) or 'nothing was running'}")
        swapped = False
        try:
            self.host.exec_json(runner, [*RUNNER, "seed-load", "--swap"])
            swapped = True
            self._say("the seed is the live database; the data before it is kept")
            code = self.host.run_to_completion(migrate)
            if code != 0:
                raise SeedLoadError(f"the migrations ({migrate}) exited with {code} on the seed")
            self._say("the app's migrations ran on the seed")
            self._start_healthy(app)
        except HostError as error:
            self._put_back(runner, app, swapped=swapped)
            raise SeedLoadError(f"{error}; staging was put back on its previous data") from error
        self._say(f"staging runs on {seed_key}")
        return {"seed": seed_key, "steps": self.steps}

    def undo(self) -> dict[str, Any]:
        runner = self._one(service="backup", role="scheduler")
        app = self.host.containers(self._labels(service="app"), running=True)
        self.host.stop(app)
        try:
            result = self.host.exec_json(runner, [*RUNNER, "seed-load", "--undo"])
        finally:
            self._start_healthy(app)
        self._say("staging runs on the data from before the last load")
        return result

    def _put_back(self, runner: str, app: Sequence[str], *, swapped: bool) -> None:
        if swapped:
            self.host.exec_json(runner, [*RUNNER, "seed-load", "--undo"])
            self._say("swapped the previous data back")
        self._start_healthy(app)

    def _start_healthy(self, names: Sequence[str]) -> None:
        self.host.start(names)
        deadline = self.clock() + self.health_timeout_seconds
        waiting = list(names)
        while waiting:
            states = {name: self.host.healthy(name) for name in waiting}
            failed = [name for name, state in states.items() if state is False]
            if failed:
                raise SeedLoadError(f"{', '.join(failed)} did not come back healthy")
            waiting = [name for name, state in states.items() if state is None]
            if waiting and self.clock() >= deadline:
                raise SeedLoadError(f"{', '.join(waiting)} not healthy after {self.health_timeout_seconds:g} s")
            if waiting:
                self.sleep(5)
        self._say(f"the app is healthy: {len(names)} containers")


def main(argv: Sequence[str] | None = None, *, host: Host | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.seed_load", description="Load prod's newest masked seed into staging."
    )
    parser.add_argument("stack", choices=stack_names())
    parser.add_argument("--seed", help="a seed's key or stamp; default: the newest")
    parser.add_argument("--undo", action="store_true", help="put the data from before the last load back")
    parser.add_argument("--health-timeout", type=float, default=DEFAULT_HEALTH_TIMEOUT_SECONDS)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(load_stack_config(args.stack))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if settings.staging_seed is None or settings.staging_seed.source_stack is None:
        print(f"{args.stack} loads no seeds: its stagingSeed.sourceStack is not set", file=sys.stderr)
        return 2
    loader = SeedLoad(host or DockerHost(settings.docker_host), settings.environment, args.health_timeout)
    try:
        result = loader.undo() if args.undo else loader.load(args.seed)
    except HostError as error:
        print(f"seed load failed: {error}", file=sys.stderr)
        _summary([*loader.steps, f"FAILED: {error}"])
        return 1
    _summary(loader.steps)
    print(json.dumps(result, indent=2))
    return 0


def _summary(lines: Sequence[str]) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("## Staging seed load\n\n" + "".join(f"- {line}\n" for line in lines))


if __name__ == "__main__":
    sys.exit(main())
