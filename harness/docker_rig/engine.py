"""The rig's Docker engine: Debian trixie's dockerd (Docker Engine 26.1, API 1.45) of the tests' own.

Its root filesystem (mmdebstrap: docker.io and its CLI, BuildKit's buildx) is built once into the
cache. Each rig gets a temporary directory for its data root, exec root, socket and pidfile, and runs
in a private mount namespace (`unshare --mount`), pivoted into that root filesystem
(harness/docker_rig/launch.sh), so nothing it mounts is seen outside and nothing is left mounted
once it stops. It shares the machine's network namespace: published ports are on the machine's
127.0.0.1 and builds reach Debian's and PyPI's mirrors with `--network host`. It has no default
bridge: containers run only on networks the tests create, from an address pool of the rig's own
(two rigs on one machine never pick the same). It is stopped by its own pid.

    rig = start_engine(); rig.docker("version"); rig.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness.docker_rig import debian

ENGINE_PACKAGES = ("docker.io", "docker-cli", "docker-buildx", "ca-certificates", "mount")
LAUNCHER = Path(__file__).with_name("launch.sh")
# Inside the rig's namespace: its state directory is bind-mounted here (launch.sh).
INSIDE = "/run/rig"
SOCKET_INSIDE = f"{INSIDE}/docker.sock"
# Address pools: one /16 per rig from 172.20.0.0 to 172.31.0.0 (Docker's own default ranges), held
# by a reservation file naming the rig's pid; a /24 per network the tests create.
POOL_SECOND_OCTETS = range(20, 32)
POOL_RESERVATIONS = Path(tempfile.gettempdir()) / "audit-x-rig-pools"
START_TIMEOUT = 60


class RigError(RuntimeError):
    """The rig could not do what was asked; the message says what, and dockerd's last words."""


@dataclass
class Rig:
    """A running dockerd: its pid, its state directory and its socket, as seen from the machine."""

    pid: int
    state: Path
    pool: str
    # Every container's cgroup is under this one: what the rig started is found by it at the end.
    cgroup_parent: str
    # dockerd's mount namespace (containerd and its shims live there too).
    namespace: str = ""
    # dockerd's process, when this process started it (`python -m harness.docker_rig up` does not).
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.state / "docker.sock"

    @property
    def host(self) -> str:
        """What a Docker client (or a Pulumi stack's `docker:host`) is given: `unix:///...`."""
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.state / "dockerd.log"

    def docker_command(self, *args: str) -> list[str]:
        """The rig's own docker CLI (26.1, with buildx), run inside its namespace: the CLI matches
        the engine, and the machine needs none. Files reach it on stdin (build contexts as tar)."""
        return [
            *("nsenter", f"--target={self.pid}", "--mount", "--", "env", f"HOME={INSIDE}/home"),
            *(f"DOCKER_CONFIG={INSIDE}/cli", "/usr/bin/docker", f"--host=unix://{SOCKET_INSIDE}", *args),
        ]

    def docker(
        self, *args: str, input: bytes | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`docker ARGS` against the rig; raises RigError with its stderr when it fails and `check`."""
        result = subprocess.run(
            self.docker_command(*args), input=input, capture_output=True, timeout=timeout, check=False
        )
        completed = subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise RigError(
                f"docker {' '.join(args[:3])} ... failed (exit {result.returncode}): {completed.stderr.strip()}"
            )
        return completed

    def stream(
        self, *args: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None, timeout: float = 900
    ) -> None:
        """`docker ARGS` reading from `stdin` or writing to `stdout` (an image's tar); raises RigError."""
        result = subprocess.run(
            self.docker_command(*args),
            stdin=stdin,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            err = result.stderr.decode(errors="replace").strip()
            raise RigError(f"docker {' '.join(args[:3])} ... failed (exit {result.returncode}): {err}")

    def inspect(self, *names: str) -> list[dict[str, object]]:
        return json.loads(self.docker("inspect", *names).stdout)

    def running(self) -> bool:
        """Whether dockerd runs: its process object when this process started it, otherwise its pid
        still in the rig's mount namespace (a reused pid is someone else's, never signalled)."""
        if self.process is not None:
            return self.process.poll() is None
        try:
            if os.readlink(f"/proc/{self.pid}/ns/mnt") != self.namespace:
                return False
            # A zombie (exited, not yet reaped) is not running.
            return Path(f"/proc/{self.pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False

    def mounts(self) -> list[str]:
        """Mount points of the machine's namespace under the rig's state or root (none, ever)."""
        found = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point.startswith(str(self.state)):
                found.append(point)
        return found

    def leftovers(self) -> list[int]:
        """Processes the rig started that are still alive: in its mount namespace (containerd, its
        shims) or in a container's cgroup under its cgroup parent."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                in_namespace = bool(self.namespace) and os.readlink(entry / "ns" / "mnt") == self.namespace
                if in_namespace or f"/{self.cgroup_parent}/" in (entry / "cgroup").read_text():
                    found.append(int(entry.name))
        return sorted(found)

    def bridges(self) -> list[str]:
        """Bridge interfaces of the machine routing a subnet of the rig's pool (its networks')."""
        octets = self.pool.split(".")[:2]
        found = []
        with contextlib.suppress(OSError):
            for line in Path("/proc/net/route").read_text().splitlines()[1:]:
                interface, destination = line.split()[:2]
                address = int(destination, 16).to_bytes(4, "little")
                if interface.startswith("br-") and [str(address[0]), str(address[1])] == octets:
                    found.append(interface)
        return sorted(set(found))

    def stop(self, timeout: float = 60) -> None:
        """Remove every container, SIGTERM dockerd, SIGKILL it if it lingers, end what it left
        (by pid), then remove its state."""
        if self.running():
            listed = self.docker("ps", "--all", "--quiet", check=False, timeout=30).stdout.split()
            if listed:
                self.docker("rm", "--force", "--volumes", *listed, check=False, timeout=120)
            # dockerd removes a network's bridge from the machine only when the network is removed.
            self.docker("network", "prune", "--force", check=False, timeout=60)
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.running():
                os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for bridge in self.bridges():
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False, timeout=30)
        release_pool(self.pool)
        shutil.rmtree(self.state, ignore_errors=True)


def engine_root() -> Path:
    """The engine's root filesystem, built once into the cache."""
    return debian.cached_rootfs("engine-root", "apt", ENGINE_PACKAGES)


def _holder(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip() or 0)
    return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def routed_second_octets() -> set[int]:
    """172.X networks that already have a route on this machine (another engine's, a VPN's)."""
    taken = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            destination = int(line.split()[1], 16).to_bytes(4, "little")
            if destination[0] == 172:
                taken.add(destination[1])
    return taken


def reserve_pool(holder: int) -> str:
    """A free 172.X.0.0/16 for a rig, held by a file naming `holder`; a dead holder's is taken over."""
    POOL_RESERVATIONS.mkdir(mode=0o700, exist_ok=True)
    routed = routed_second_octets()
    for octet in POOL_SECOND_OCTETS:
        path = POOL_RESERVATIONS / str(octet)
        if octet in routed and not path.exists():
            continue
        if path.exists():
            if _alive(_holder(path)):
                continue
            path.unlink(missing_ok=True)
        try:
            with open(path, "x") as reservation:
                reservation.write(str(holder))
        except FileExistsError:
            continue
        return f"172.{octet}.0.0/16"
    raise RigError(
        f"no free address pool for the rig among 172.{POOL_SECOND_OCTETS[0]}-{POOL_SECOND_OCTETS[-1]}.0.0/16"
    )


def release_pool(pool: str) -> None:
    with contextlib.suppress(IndexError, OSError):
        (POOL_RESERVATIONS / pool.split(".")[1]).unlink()


def _claim_pool(pool: str, pid: int) -> None:
    (POOL_RESERVATIONS / pool.split(".")[1]).write_text(str(pid))


def require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError("the Docker rig needs root: it mounts a root filesystem and starts dockerd")
    for tool in ("unshare", "nsenter", "pivot_root"):
        if shutil.which(tool) is None:
            raise RigError(f"{tool} is missing: apt-get install util-linux")


def start_engine(state: Path | None = None, timeout: float = START_TIMEOUT) -> Rig:
    """Start a rig (the root filesystem built first if the cache has none) and wait for its API."""
    require_root()
    root = engine_root()
    state = state or Path(tempfile.mkdtemp(prefix="audit-x-rig-"))
    state.chmod(0o711)
    pool = reserve_pool(os.getpid())
    cgroup_parent = f"audit-x-rig-{state.name}"
    log = (state / "dockerd.log").open("wb")
    try:
        process = subprocess.Popen(
            [
                *("unshare", "--mount", "--propagation", "private", "sh", str(LAUNCHER)),
                *(str(root), str(state), pool, cgroup_parent),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the tests reaches the rig only through stop()
        )
    finally:
        log.close()
    _claim_pool(pool, process.pid)
    rig = Rig(pid=process.pid, state=state, pool=pool, cgroup_parent=cgroup_parent, process=process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            rig.stop()
            raise RigError(f"dockerd exited with {process.returncode} at start; its log ends:\n{tail(state)}")
        if rig.socket.exists() and rig.docker("version", check=False, timeout=10).returncode == 0:
            rig.namespace = os.readlink(f"/proc/{rig.pid}/ns/mnt")
            return rig
        if time.monotonic() > deadline:
            log_tail = tail(state)
            rig.stop()
            raise RigError(f"dockerd did not answer within {timeout:g} s; its log ends:\n{log_tail}")
        time.sleep(0.2)


def tail(state: Path, lines: int = 12) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((state / "dockerd.log").read_text(errors="replace").strip().splitlines()[-lines:])
    return "(no log)"


@contextlib.contextmanager
def engine() -> Iterator[Rig]:
    """A rig for the length of a `with` block."""
    rig = start_engine()
    try:
        yield rig
    finally:
        rig.stop()


def server_version(rig: Rig) -> tuple[str, str]:
    """(engine version, API version) as the engine reports them."""
    out = rig.docker("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}").stdout.split()
    return out[0], out[1]


def version_tuple(text: str) -> tuple[int, ...]:
    """'26.1.5+dfsg1' -> (26, 1, 5)."""
    return tuple(int(part) for part in re.split(r"[+~-]", text, maxsplit=1)[0].split("."))
