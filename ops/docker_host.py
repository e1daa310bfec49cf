"""A stack's Docker host, as the operator commands reach it: the Docker CLI with `--host`.

The host is the stack's `dockerHost` (an `ssh://user@host` URL, as Pulumi's Docker provider uses,
or a `unix://` socket); the Docker CLI connects over SSH itself, so an operator needs only the SSH
key that CI uses. Containers are found by their labels (`io.audit-x.environment`, `.service`,
`.role`), never by a name typed by hand: the names of jobs, workers and the backup runner carry a
revision that changes with every release.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from components.lib.tokens import label


class HostError(RuntimeError):
    """A Docker command on the host failed: the message names the command and what it said."""


@dataclass(frozen=True)
class Container:
    """One container as `docker inspect` tells it."""

    name: str
    image: str
    state: str  # running, exited, created, restarting, ...
    health: str | None  # healthy, unhealthy, starting; None without a health check
    exit_code: int
    started_at: str
    labels: Mapping[str, str]

    @property
    def service(self) -> str:
        return self.labels.get(label("service"), "")

    @property
    def role(self) -> str:
        return self.labels.get(label("role"), "")

    @property
    def lifecycle(self) -> str:
        return self.labels.get(label("lifecycle"), "")

    @property
    def ok(self) -> bool:
        """A service runs and is not unhealthy; a job exited 0."""
        if self.lifecycle == "job":
            return self.state == "exited" and self.exit_code == 0
        return self.state == "running" and self.health in (None, "healthy")


def container_from_inspect(item: Mapping[str, Any]) -> Container:
    state = item.get("State") or {}
    config = item.get("Config") or {}
    health = state.get("Health")
    return Container(
        name=str(item.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        state=str(state.get("Status", "")),
        health=str(health["Status"]) if health else None,
        exit_code=int(state.get("ExitCode", 0)),
        started_at=str(state.get("StartedAt", "")),
        labels=dict(config.get("Labels") or {}),
    )


@dataclass
class DockerHost:
    """The Docker CLI against one host. Every call names the host: an operator's own DOCKER_HOST or
    Docker context never decides where a command runs."""

    host: str

    def argv(self, *argv: str) -> list[str]:
        return ["docker", "--host", self.host, *argv]

    def _docker(self, *argv: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as error:
            raise HostError("the Docker CLI (`docker`) is not installed: apt-get install docker.io") from error

    def _checked(self, *argv: str, timeout: float = 3600) -> str:
        result = self._docker(*argv, timeout=timeout)
        if result.returncode != 0:
            raise HostError(f"`docker {argv[0]}` on {self.host} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def containers(self, labels: Mapping[str, str], *, running: bool) -> list[str]:
        """The names of the containers carrying every one of `labels`, sorted."""
        filters = [arg for key, value in labels.items() for arg in ("--filter", f"label={key}={value}")]
        listed = self._checked("ps", *([] if running else ["--all"]), *filters, "--format", "{{.Names}}")
        return sorted(listed.split())

    def inspect(self, names: Sequence[str]) -> list[Container]:
        if not names:
            return []
        return [container_from_inspect(item) for item in json.loads(self._checked("inspect", *names))]

    def image_tags(self, images: Sequence[str]) -> dict[str, list[str]]:
        """The tags of each image (by id or name); an image the host no longer has maps to []."""
        tags: dict[str, list[str]] = {}
        for image in images:
            result = self._docker("image", "inspect", "--format", "{{json .RepoTags}}", image)
            tags[image] = json.loads(result.stdout or "null") or [] if result.returncode == 0 else []
        return tags

    def exec_json(self, container: str, argv: Sequence[str]) -> dict[str, Any]:
        """Run a command in a container; its stdout as JSON."""
        result = self._docker("exec", container, *argv)
        if result.returncode != 0:
            raise HostError(f"`{' '.join(argv)}` in {container} failed: {result.stderr.strip()[-2000:]}")
        return json.loads(result.stdout)

    def run(self, argv: Sequence[str]) -> int:
        """A Docker command with the terminal attached (exec -it, logs -f): its exit status."""
        try:
            return subprocess.run(self.argv(*argv), check=False).returncode
        except FileNotFoundError as error:
            raise HostError("the Docker CLI (`docker`) is not installed: apt-get install docker.io") from error

    def stream(self, commands: Mapping[str, Sequence[str]], *, grep: str | None = None) -> int:
        """Docker commands side by side (`logs` of several containers), their stdout and stderr as
        one stream (PostgreSQL and the runner log to stderr), each line prefixed with its key when
        there are several, only the lines holding `grep` when given. The highest exit status."""
        processes = {
            key: subprocess.Popen(self.argv(*argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for key, argv in commands.items()
        }
        lock = threading.Lock()

        def copy(key: str, stream: IO[str]) -> None:
            for line in stream:
                if grep is None or grep in line:
                    with lock:
                        sys.stdout.write(f"{key} | {line}" if len(processes) > 1 else line)
                        sys.stdout.flush()

        readers = [threading.Thread(target=copy, args=(key, p.stdout), daemon=True) for key, p in processes.items()]
        for reader in readers:
            reader.start()
        try:
            codes = [process.wait() for process in processes.values()]
        except KeyboardInterrupt:
            for process in processes.values():
                process.terminate()
            return 130
        for reader in readers:
            reader.join()
        return max(codes, default=0)

    def stop(self, names: Sequence[str]) -> None:
        if names:
            self._checked("stop", *names)

    def start(self, names: Sequence[str]) -> None:
        if names:
            self._checked("start", *names)

    def restart(self, name: str) -> None:
        self._checked("restart", name)

    def run_to_completion(self, name: str) -> int:
        """Start an exited one-shot container, wait for it, and return its exit code."""
        result = self._docker("start", "--attach", name)
        sys.stdout.write(result.stdout[-4000:])
        return result.returncode

    def healthy(self, name: str) -> bool | None:
        """True healthy (or running without a health check), False unhealthy or stopped, None starting."""
        try:
            (container,) = self.inspect([name])
        except HostError:
            return False
        if container.state != "running" or container.health == "unhealthy":
            return False
        return None if container.health == "starting" else True
