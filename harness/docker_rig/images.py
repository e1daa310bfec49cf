"""The images the rig runs, all built here (no registry can be reached), cached by their inputs.

Each image is named by its `ImageSpec`: a Debian base imported from a root filesystem, or a
Dockerfile with its context directory, build arguments and the images it is built FROM. Its inputs
hash to a key (the files of the context as the program's own image tags hash them, the build
arguments, the key of every image it is built from); the built image is saved under that key in the
cache (`docker save`), so a later run, on any rig, loads it instead of building it. An image in the
rig already carries its key as a label and is used as it is.

The project's own Dockerfiles are built as they are, with what they fetch from outside supplied by
build arguments the Dockerfiles declare for it (a base image of the rig's, Debian's pgBackRest).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components.lib.build import REPO_ROOT, source_digest
from harness.docker_rig import debian
from harness.docker_rig.engine import Rig, RigError

HERE = Path(__file__).parent
INPUTS_LABEL = "org.audit-x.rig.inputs"
BUILD_TIMEOUT = 1800


@dataclass(frozen=True)
class ImageSpec:
    """An image of the rig: `tag` is what containers and stack configs name it by.

    Either `rootfs_packages` (a Debian root filesystem imported as a base, `None` otherwise) or
    `context` (a directory of this repository with its Dockerfile), `args` (build arguments) and
    `parents` (the rig's images a build argument or FROM names, built first)."""

    tag: str
    description: str
    context: Path | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    parents: tuple[ImageSpec, ...] = ()
    rootfs_packages: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        """A hash of everything the image is made from."""
        if self.rootfs_packages is not None:
            return debian.rootfs_inputs("minbase", self.rootfs_packages, with_local_cas=True)
        assert self.context is not None
        return debian.digest(
            self.tag,
            self.context.relative_to(REPO_ROOT).as_posix(),
            source_digest(self.context),
            json.dumps(dict(self.args), sort_keys=True),
            *(parent.key for parent in self.parents),
        )

    @property
    def cache_file(self) -> Path:
        return debian.cache_dir() / "images" / f"{self.cache_stem}-{self.key}.tar"

    @property
    def cache_stem(self) -> str:
        return self.tag.replace("/", "_").replace(":", "_")

    def stale_cache_files(self) -> list[Path]:
        """This tag's saved images from other inputs (an older Dockerfile or context)."""
        pattern = re.compile(rf"{re.escape(self.cache_stem)}-[0-9a-f]{{16}}\.tar")
        folder = self.cache_file.parent
        found = [path for path in folder.glob("*.tar") if pattern.fullmatch(path.name)] if folder.is_dir() else []
        return sorted(path for path in found if path != self.cache_file)


def context_tar(directory: Path) -> bytes:
    """The build context as the tar `docker build -` reads, without Python's caches (the files the
    program's image tag hashes). GNU format, whole-second times: the CLI takes a stream that opens
    with a PAX header for a Dockerfile."""

    def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = int(info.mtime)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False, filter=normalised)
    return buffer.getvalue()


def present_key(rig: Rig, tag: str) -> str | None:
    result = rig.docker(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}', tag, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def build(rig: Rig, spec: ImageSpec) -> None:
    if spec.rootfs_packages is not None:
        import_rootfs(rig, spec)
        return
    assert spec.context is not None
    command = ["buildx", "build", "--progress=plain", "--network=host", f"--tag={spec.tag}"]
    command += [f"--label={INPUTS_LABEL}={spec.key}", *(f"--build-arg={k}={v}" for k, v in sorted(spec.args.items()))]
    result = rig.docker(*command, "-", input=context_tar(spec.context), timeout=BUILD_TIMEOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-25:])
        raise RigError(f"building {spec.tag} from {spec.context.relative_to(REPO_ROOT)} failed:\n{tail}")


def import_rootfs(rig: Rig, spec: ImageSpec) -> None:
    """mmdebstrap's tar straight into `docker import`, with the config Debian's own images have."""
    assert spec.rootfs_packages is not None
    producer = debian.rootfs_tarball("minbase", spec.rootfs_packages)
    assert producer.stdout is not None and producer.stderr is not None
    changes = [f"LABEL {INPUTS_LABEL}={spec.key}", 'CMD ["bash"]', "ENV PATH=" + DEBIAN_PATH]
    with producer:
        try:
            rig.stream("import", *(f"--change={change}" for change in changes), "-", spec.tag, stdin=producer.stdout)
        finally:
            errors = producer.stderr.read().decode(errors="replace")
    if producer.returncode != 0:
        raise RigError(f"mmdebstrap for {spec.tag} failed (exit {producer.returncode}): {errors.strip()[-2000:]}")


DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def save(rig: Rig, spec: ImageSpec) -> None:
    """`docker save` into the cache, written aside then renamed (a concurrent run never sees half)."""
    spec.cache_file.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=".saving-", dir=spec.cache_file.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            rig.stream("save", spec.tag, stdout=out)
        os.replace(scratch, spec.cache_file)
        for stale in spec.stale_cache_files():  # the cache keeps one save per tag: the newest
            stale.unlink(missing_ok=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)


def load(rig: Rig, spec: ImageSpec) -> None:
    with spec.cache_file.open("rb") as tar:
        rig.stream("load", "--quiet", stdin=tar)


@dataclass
class Provenance:
    """How each image came to be in a rig this run, and how long that took."""

    how: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def ensure(rig: Rig, spec: ImageSpec, provenance: Provenance | None = None) -> str:
    """`spec`'s image in the rig (there already, loaded from the cache, or built and cached);
    returns its tag."""
    provenance = provenance if provenance is not None else Provenance()
    for parent in spec.parents:
        ensure(rig, parent, provenance)
    if spec.tag in provenance.how:
        return spec.tag
    started = time.monotonic()
    if present_key(rig, spec.tag) == spec.key:
        how = "present"
    elif spec.cache_file.exists():
        load(rig, spec)
        how = "loaded from the cache"
    else:
        build(rig, spec)
        save(rig, spec)
        how = "built"
    if present_key(rig, spec.tag) != spec.key:
        raise RigError(f"{spec.tag} in the rig does not carry its inputs' key {spec.key} after it was {how}")
    provenance.how[spec.tag] = how
    provenance.seconds[spec.tag] = round(time.monotonic() - started, 2)
    return spec.tag


class RigImages:
    """The images one rig has been given this session, each ensured once (built, loaded or there)."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.provenance = Provenance()

    def __getitem__(self, spec: ImageSpec) -> str:
        return ensure(self.rig, spec, self.provenance)
