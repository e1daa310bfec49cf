"""The operator commands, one entry point, in the habits Rails teams know from Kamal:

    python -m ops status ENV                         the release, every container, backups, alerts
    python -m ops logs ENV SERVICE [-f] [--since 10m] [--grep TEXT]
    python -m ops exec ENV SERVICE [-i] -- CMD...    a command in a running container of SERVICE
    python -m ops restart ENV SERVICE                its containers one at a time, each healthy first
    python -m ops stop|start ENV SERVICE             every container of it (`app`: web and workers)
    python -m ops rerun ENV JOB                      one job's container again, nothing else
    python -m ops console ENV                        a Rails console with the app's environment

ENV is a stack (`Pulumi.<ENV>.yaml`); its Docker host is the stack's `dockerHost` unless `--host`
names another (a host being rebuilt). SERVICE is a name from the stack's `containers` output
(postgres, redis, backup, web, migrate, ...), a worker role (sidekiq, karafka) or a job of its
`jobs` output (redis-password, pre-migration-backup, ...); containers are
found by label, so a release's new names never need typing. Every command prints the Docker
command it runs before running it. Exit status: the command's own, 1 when the host refused, 2
for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

from components.app import LAUNCHER
from components.settings import ConfigError
from harness.mock_engine import stack_names
from ops import status as status_view
from ops.docker_host import HostError
from ops.environment import Environment, UnknownServiceError, names

# A Rails console, started the way the container's own command is: the launcher (which exports the
# app's secrets from their files, docs/app-contract.md), then the image's entrypoint.
CONSOLE = ("bin/rails", "console")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops", description="Operate an audit-x environment.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("env", choices=stack_names(), metavar="ENV", help=f"the stack: {', '.join(stack_names())}")
        sub.add_argument("--host", help="a Docker host other than the stack's dockerHost (ssh://... or unix://...)")
        return sub

    status = command("status", "the release, each container's health, the backups' age and the alerts firing")
    status.add_argument("--json", action="store_true", help="one JSON object instead of a table")

    logs = command("logs", "a service's logs (every container of it)")
    logs.add_argument("service", metavar="SERVICE")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--since", help="only lines newer than this (10m, 2h, or an RFC 3339 time)")
    logs.add_argument("--tail", default="200", help="lines from the end of each container's log (default 200)")
    logs.add_argument("--grep", help="only lines holding this text")

    exec_ = command("exec", "a command in a running container of a service")
    exec_.add_argument("service", metavar="SERVICE")
    exec_.add_argument("-i", "--interactive", action="store_true", help="attach a terminal (docker exec -it)")
    exec_.add_argument("--stdin", action="store_true", help="pass standard input, no terminal (for a file piped in)")
    exec_.add_argument("--app-env", action="store_true", help="through the app's launcher: its secrets exported")
    exec_.epilog = "The command follows --: python -m ops exec prod backup -- python -m runner status"

    restart = command("restart", "restart a service's containers one at a time, each healthy before the next")
    restart.add_argument("service", metavar="SERVICE")
    restart.add_argument("--health-timeout", type=float, default=180, help="seconds to wait for each (180)")

    for verb in ("stop", "start"):
        sub = command(verb, f"{verb} every container of a service (`app`: every web and worker container)")
        sub.add_argument("service", metavar="SERVICE")

    rerun = command("rerun", "run one job's container again (docker start --attach), nothing else")
    rerun.add_argument("job", metavar="JOB", help="a job of the stack's `jobs` output")

    command("console", "a Rails console in a web container, with the app's environment")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command to run, options of its own included.
    split = given.index("--") if "--" in given else len(given)
    args = parser.parse_args(given[:split])
    command = given[split + 1 :]
    if args.command == "exec" and not command:
        parser.error("exec: give the command after --, e.g. `exec prod backup -- python -m runner status`")
    handlers: dict[str, Callable[[Environment], int]] = {
        "status": lambda environment: _status(environment, as_json=args.json),
        "logs": lambda environment: _logs(environment, args),
        "exec": lambda environment: _exec(
            environment,
            args.service,
            command,
            tty=["-it"] if args.interactive else ["-i"] if args.stdin else [],
            app_env=args.app_env,
        ),
        "restart": lambda environment: _restart(environment, args.service, args.health_timeout),
        "rerun": lambda environment: _rerun(environment, args.job),
        "stop": lambda environment: _stop_or_start(environment, args.service, start=False),
        "start": lambda environment: _stop_or_start(environment, args.service, start=True),
        "console": lambda environment: _exec(environment, "web", list(CONSOLE), tty=["-it"], app_env=True),
    }
    try:
        return handlers[args.command](Environment.of(args.env, docker_host=args.host))
    except (ConfigError, UnknownServiceError) as error:
        print(error, file=sys.stderr)
        return 2
    except HostError as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1


def _status(environment: Environment, *, as_json: bool) -> int:
    status = status_view.collect(environment)
    print(json.dumps(status.as_json(), indent=2) if as_json else status_view.render(status))
    return 1 if status.problems else 0


def _say(environment: Environment, docker_argv: Sequence[str]) -> None:
    print("+ " + " ".join(environment.host.argv(*docker_argv)), file=sys.stderr)


def _logs(environment: Environment, args: argparse.Namespace) -> int:
    containers = names(environment.containers(args.service))
    if not containers:
        raise HostError(f"no container of {args.service} in {environment.name} on {environment.host.host}")
    options = ["--timestamps", "--tail", args.tail, *(["--since", args.since] if args.since else [])]
    commands = {name: ["logs", *options, *(["--follow"] if args.follow else []), name] for name in containers}
    for docker_argv in commands.values():
        _say(environment, docker_argv)
    return environment.host.stream(commands, grep=args.grep)


def _restart(environment: Environment, service: str, timeout: float) -> int:
    if environment.is_job(service):
        raise UnknownServiceError(f"restart: {service} is a job; run jobs again with deploy.rerunJobs (docs/deploy.md)")
    containers = names(environment.containers(service))
    if not containers:
        raise HostError(f"no container of {service} in {environment.name} on {environment.host.host}")
    for name in containers:
        _say(environment, ["restart", name])
        environment.host.restart(name)
        deadline = time.monotonic() + timeout
        while (state := environment.host.healthy(name)) is None and time.monotonic() < deadline:
            time.sleep(1)
        if state is not True:
            raise HostError(f"{name} is not healthy after its restart; the others were not restarted")
        print(f"{name} restarted and healthy")
    return 0


def _stop_or_start(environment: Environment, service: str, *, start: bool) -> int:
    if environment.is_job(service):
        raise UnknownServiceError(f"{'start' if start else 'stop'}: {service} is a job; see `rerun`")
    containers = names(environment.containers(service, running=not start))
    if not containers:
        print(f"no container of {service} to {'start' if start else 'stop'} in {environment.name}")
        return 0
    _say(environment, ["start" if start else "stop", *containers])
    (environment.host.start if start else environment.host.stop)(containers)
    print(f"{'started' if start else 'stopped'}: {', '.join(containers)}")
    return 0


def _rerun(environment: Environment, job: str) -> int:
    """The job's own container, started again as it was created (its script, files and
    environment): one job, where `deploy.rerunJobs` re-runs every job of the stack."""
    if not environment.is_job(job):
        raise UnknownServiceError(f"rerun: {job} is not a job; expected one of the stack's `jobs` output")
    containers = names(environment.containers(job))
    if len(containers) != 1:
        raise HostError(f"expected one container of the job {job} in {environment.name}, found {containers}")
    _say(environment, ["start", "--attach", containers[0]])
    code = environment.host.run_to_completion(containers[0])
    print(f"{job} ({containers[0]}) exited {code}")
    return code


def _exec(environment: Environment, service: str, command: Sequence[str], *, tty: list[str], app_env: bool) -> int:
    container = environment.one_running(service)
    if app_env and container.service != "app":
        raise UnknownServiceError(f"--app-env: {service} is not an app role; the app's launcher runs in app containers")
    launcher = [LAUNCHER, *environment.settings.app.entrypoint] if app_env else []
    docker_argv = ["exec", *tty, container.name, *launcher, *command]
    _say(environment, docker_argv)
    return environment.host.run(docker_argv)


if __name__ == "__main__":
    sys.exit(main())
