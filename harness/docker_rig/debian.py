"""Debian root filesystems for the rig, made by mmdebstrap from this machine's own apt source.

The machine's apt source names the mirror; only the suite changes (trixie: Docker Engine 26,
PostgreSQL 17, pgBackRest 2.55), so no host is written here. What is built is kept in the cache
directory, under a name made from everything that went into it, and reused by later runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

SUITE = "trixie"
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# The certificate authorities this machine adds to Debian's (its egress may re-sign TLS): a base
# image carries them, so an image's own `apt-get install ca-certificates` trusts what the host does.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def cache_dir() -> Path:
    """Where the rig keeps what it built: ${AUDIT_X_CACHE:-~/.cache/audit-x}/rig."""
    base = os.environ.get("AUDIT_X_CACHE") or str(Path.home() / ".cache" / "audit-x")
    path = Path(base) / "rig"
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror(sources: Path = APT_SOURCES) -> str:
    """The first `URIs:` of the machine's deb822 source: Debian's own archive, not its security one."""
    if not sources.exists():
        raise RuntimeError(f"{sources} is missing: the rig reads Debian's mirror from this machine's apt source")
    for uri in re.findall(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE):
        if "security" not in uri:
            return uri
    raise RuntimeError(f"{sources} names no Debian archive (a `URIs:` line without 'security')")


def require_mmdebstrap() -> str:
    found = shutil.which("mmdebstrap")
    if not found:
        raise RuntimeError(
            "mmdebstrap is missing: as root run `sh harness/system_packages.sh` (or apt-get install mmdebstrap)"
        )
    return found


def local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def digest(*parts: str | bytes) -> str:
    """A short, stable hash of what went into something the rig builds."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return hasher.hexdigest()[:16]


def mmdebstrap_command(variant: str, packages: Sequence[str], target: str, *, with_local_cas: bool) -> list[str]:
    command = [require_mmdebstrap(), "--quiet", f"--variant={variant}"]
    if packages:
        command.append("--include=" + ",".join(packages))
    if with_local_cas and local_cas():
        # `$1` is the new root inside mmdebstrap's hook; the hook runs on the host.
        cas = " ".join(str(ca) for ca in local_cas())
        command.append(f'--customize-hook=mkdir -p "$1{LOCAL_CAS}" && cp {cas} "$1{LOCAL_CAS}/"')
    # Smaller images: no apt lists, no docs, as Debian's own container images.
    command += ['--customize-hook=rm -rf "$1/var/lib/apt/lists/"*', "--dpkgopt=path-exclude=/usr/share/doc/*"]
    return [*command, SUITE, target, mirror()]


def rootfs_inputs(variant: str, packages: Sequence[str], *, with_local_cas: bool) -> str:
    cas = [ca.read_bytes() for ca in local_cas()] if with_local_cas else []
    return digest(SUITE, variant, ",".join(packages), mirror(), *cas)


def cached_rootfs(name: str, variant: str, packages: Sequence[str]) -> Path:
    """A root filesystem directory in the cache, built once for these inputs."""
    target = cache_dir() / f"{name}-{rootfs_inputs(variant, packages, with_local_cas=False)}"
    if target.is_dir():
        return target
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir()))
    try:
        built = scratch / "root"
        run(mmdebstrap_command(variant, packages, str(built), with_local_cas=False), f"building the {name} root")
        try:
            built.rename(target)
        except OSError:
            if not target.is_dir():  # another run built the same inputs meanwhile: theirs is as good
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def rootfs_tarball(variant: str, packages: Sequence[str]) -> subprocess.Popen[bytes]:
    """mmdebstrap writing a root filesystem (the machine's CAs added) as a tar to its stdout."""
    command = mmdebstrap_command(variant, packages, "-", with_local_cas=True)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(command: Sequence[str], what: str, timeout: float = 900) -> None:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(command[:4])} ...\n{tail}")
