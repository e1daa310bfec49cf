"""Networks and containers on the rig for one test: named uniquely, removed when the test ends.

with network(rig, internal=True) as net, container(rig, image, "sleep", "300", network=net) as box:
    rig.docker("exec", box.name, ...)
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from harness.docker_rig.engine import Rig, RigError

_serial = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_serial)}"


@contextlib.contextmanager
def network(rig: Rig, *, internal: bool = False, prefix: str = "rig-net") -> Iterator[str]:
    """A bridge network of the rig's own (`--internal`: no route out of it); yields its name."""
    name = unique(prefix)
    rig.docker("network", "create", *(["--internal"] if internal else []), name)
    try:
        yield name
    finally:
        rig.docker("network", "rm", name, check=False)


@dataclass
class Container:
    rig: Rig
    name: str

    def state(self) -> dict[str, object]:
        return json.loads(self.rig.docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def health(self) -> str:
        health = self.state().get("Health")
        return str(health.get("Status")) if isinstance(health, dict) else "none"

    def ip(self, network_name: str) -> str:
        template = f'{{{{(index .NetworkSettings.Networks "{network_name}").IPAddress}}}}'
        return self.rig.docker("inspect", "--format", template, self.name).stdout.strip()

    def exec(self, *command: str, user: str | None = None, timeout: float = 60) -> tuple[int, str]:
        """`docker exec`; returns the exit code and what it printed (stdout and stderr)."""
        args = ["exec", *(["--user", user] if user else []), self.name, *command]
        result = self.rig.docker(*args, check=False, timeout=timeout)
        return result.returncode, result.stdout + result.stderr

    def published(self, port: int) -> tuple[str, int]:
        """(address, port) the machine reaches container port `port` on."""
        line = self.rig.docker("port", self.name, f"{port}/tcp").stdout.split()[0]
        address, _, number = line.rpartition(":")
        return address, int(number)

    def logs(self) -> str:
        result = self.rig.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_for(self, status: str, timeout: float = 60) -> float:
        """Seconds until the health status is `status`; RigError (with the health log) at `timeout`."""
        started = time.monotonic()
        while (current := self.health()) != status:
            if time.monotonic() - started > timeout:
                raise RigError(
                    f"{self.name} was still {current!r}, not {status!r}, after {timeout:g} s: {self.state()}"
                )
            time.sleep(0.1)
        return time.monotonic() - started


@dataclass(frozen=True)
class File:
    """A file put into a container before it starts, as the program's uploads are (`docker cp`)."""

    path: str
    content: str
    owner: int = 0
    mode: int = 0o400


def files_tar(files: Sequence[File]) -> bytes:
    """`files` as a tar to extract at `/`, each parent directory owned as its file (mode 0700 for
    a secret's own directory, 0755 otherwise)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        seen: set[str] = set()
        for item in files:
            parent = PurePosixPath(item.path).parent
            if str(parent) not in seen and str(parent) != "/":
                seen.add(str(parent))
                directory = tarfile.TarInfo(str(parent).lstrip("/"))
                directory.type = tarfile.DIRTYPE
                directory.uid = directory.gid = item.owner
                directory.mode = 0o700 if item.mode & 0o077 == 0 else 0o755
                tar.addfile(directory)
            data = item.content.encode()
            info = tarfile.TarInfo(item.path.lstrip("/"))
            info.size, info.uid, info.gid, info.mode = len(data), item.owner, item.owner, item.mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextlib.contextmanager
def container(
    rig: Rig,
    image: str,
    *command: str,
    network: str | None = None,
    options: Sequence[str] = (),
    files: Sequence[File] = (),
    prefix: str = "rig-box",
    name: str | None = None,
) -> Iterator[Container]:
    """`image` created (on `network`, with `options`), given `files`, started; removed with its
    anonymous volumes at the end. Without a network it has none (`--network none`): a container
    joins only the rig's."""
    name = name or unique(prefix)
    rig.docker("create", "--name", name, f"--network={network or 'none'}", *options, image, *command)
    try:
        if files:
            rig.docker("cp", "--archive", "-", f"{name}:/", input=files_tar(files))
        rig.docker("start", name)
        yield Container(rig, name)
    finally:
        rig.docker("rm", "--force", "--volumes", name, check=False)


@contextlib.contextmanager
def volume(rig: Rig, prefix: str = "rig-vol") -> Iterator[str]:
    """A named volume, removed at the end."""
    name = unique(prefix)
    rig.docker("volume", "create", name)
    try:
        yield name
    finally:
        rig.docker("volume", "rm", "--force", name, check=False)
