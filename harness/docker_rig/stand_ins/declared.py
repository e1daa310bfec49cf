"""A container on the rig as the program declares it: the plan's container resource (image
aside) turned into `docker create`, its uploads copied in before it starts, as the Docker
provider does (create, upload, start).

What is taken verbatim from the declaration: entrypoint, command, environment, user, health
check (command, interval, timeout, retries, start period and start interval), init, memory,
security options, labels, the network aliases and the uploads (content, mode, owner). What the
rig supplies: the image (a rig image standing for the one declared), one network of the test's
own (every alias of every declared network on it), and the volumes: each declared named volume
becomes a volume of this container's own (or the one the caller names, to share it with a job),
each host path an empty volume of its own unless the caller maps it.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from collections.abc import Iterator, Mapping
from typing import Any

from harness.docker_rig.containers import Container, unique
from harness.docker_rig.engine import Rig
from harness.mock_engine import DeclaredResource


def _duration(value: str | None) -> str | None:
    return value if value else None


def uploads_tar(uploads: list[dict[str, Any]]) -> bytes:
    """The declared uploads as one tar rooted at `/`, with their modes and owners."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        directories: set[str] = set()
        for upload in uploads:
            path = upload["file"].lstrip("/")
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    tar.addfile(info)
            data = upload["content"].encode()
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), int(time.time())
            info.mode = int(upload.get("permissions") or "0644", 8)
            info.uid = int(upload.get("owner") or 0)
            info.gid = int(upload.get("group") or upload.get("owner") or 0)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def create_options(
    resource: DeclaredResource,
    *,
    network: str,
    volumes: Mapping[str, str],
    env: Mapping[str, str],
) -> list[str]:
    inputs = resource.plain_inputs
    options = [f"--network={network}"]
    aliases = sorted({alias for net in inputs.get("networksAdvanced", []) for alias in net.get("aliases", [])})
    options += [f"--network-alias={alias}" for alias in aliases]
    declared_env = dict(entry.split("=", 1) for entry in inputs.get("envs", []))
    options += [f"--env={name}={value}" for name, value in {**declared_env, **env}.items()]
    if inputs.get("user"):
        options.append(f"--user={inputs['user']}")
    if inputs.get("init"):
        options.append("--init")
    if inputs.get("memory"):
        options.append(f"--memory={inputs['memory']}m")
    options += [f"--security-opt={opt}" for opt in inputs.get("securityOpts", [])]
    options += [f"--label={label['label']}={label['value']}" for label in inputs.get("labels", [])]
    check = inputs.get("healthcheck")
    if check:
        assert check["tests"][0] == "CMD-SHELL", check
        options.append(f"--health-cmd={check['tests'][1]}")
        for flag, key in (
            ("interval", "interval"),
            ("timeout", "timeout"),
            ("start-period", "startPeriod"),
            ("start-interval", "startInterval"),
        ):
            if _duration(check.get(key)):
                options.append(f"--health-{flag}={check[key]}")
        if check.get("retries"):
            options.append(f"--health-retries={check['retries']}")
    for volume in inputs.get("volumes", []):
        target = volume["containerPath"]
        source = volumes.get(target)
        read_only = ",readonly" if volume.get("readOnly") else ""
        if source is None:
            # Docker refuses a read-only anonymous volume: declared_container names one.
            options.append(f"--mount=type=volume,target={target}")
        elif source.startswith("/"):
            options.append(f"--mount=type=bind,source={source},target={target}{read_only}")
        else:
            options.append(f"--mount=type=volume,source={source},target={target}{read_only}")
    entrypoint = inputs.get("entrypoints") or []
    if entrypoint:
        options.append(f"--entrypoint={entrypoint[0]}")
    return options


@contextlib.contextmanager
def declared_container(
    rig: Rig,
    resource: DeclaredResource,
    image: str,
    *,
    network: str,
    volumes: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    uploads: list[dict[str, Any]] | None = None,
    command: list[str] | None = None,
    start: bool = True,
) -> Iterator[Container]:
    """`resource` created on the rig from `image`, its uploads (or `uploads`) copied in, started;
    removed with its own volumes at the end. `volumes` maps a container path to a named volume
    (shared with another container) or an absolute path of the rig's (a bind); `env` adds to or
    replaces declared variables; `command` replaces the declared command (a test that says why)."""
    inputs = resource.plain_inputs
    name = unique(resource.name)
    entrypoint = inputs.get("entrypoints") or []
    command = [*entrypoint[1:], *(command if command is not None else inputs.get("command") or [])]
    # A host path the caller does not map gets an empty volume of the container's own.
    own_volumes = {
        volume["containerPath"]: unique("rig-vol")
        for volume in inputs.get("volumes", [])
        if volume.get("hostPath") and volume["containerPath"] not in (volumes or {})
    }
    options = create_options(resource, network=network, volumes={**own_volumes, **(volumes or {})}, env=env or {})
    try:
        rig.docker("create", "--name", name, *options, image, *command)
        files = inputs.get("uploads", []) if uploads is None else uploads
        if files:
            rig.docker("cp", "-", f"{name}:/", input=uploads_tar(files))
        if start:
            rig.docker("start", name)
        yield Container(rig, name)
    finally:
        rig.docker("rm", "--force", "--volumes", name, check=False)
        for own in own_volumes.values():
            rig.docker("volume", "rm", "--force", own, check=False)


def run_to_end(rig: Rig, container: Container, timeout: float = 120) -> tuple[int, str]:
    """Wait for a one-shot container (a job) to exit; its exit code and its output."""
    result = rig.docker("wait", container.name, timeout=timeout)
    return int(result.stdout.strip()), container.logs()
