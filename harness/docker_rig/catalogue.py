"""The rig's images, by what they are: each one's spec, in the order they build.

base                  Debian trixie (minbase), imported from mmdebstrap; the machine's CAs added
"""

from __future__ import annotations

from harness.docker_rig.images import ImageSpec

BASE = ImageSpec(
    tag="audit-x-rig/debian:trixie",
    description="Debian trixie, minbase, from mmdebstrap (the machine's CA certificates added)",
    rootfs_packages=(),
)

ALL: tuple[ImageSpec, ...] = (BASE,)
BY_NAME = {"base": BASE}
