"""The rig's images, by name, each one's spec; `python -m harness.docker_rig images` lists them.

    base             Debian trixie (minbase), imported from mmdebstrap; the machine's CAs added
    postgres         PostgreSQL 17 from trixie, laid out as the official image (postgres_base/)
    postgres-server  the program's own PostgreSQL image (components/data/postgres_image), FROM
                     `postgres`, with trixie's pgBackRest 2.55 (PGBACKREST_APT_SOURCE=debian)
    influx-cli       a stand-in for the one file the runner's Dockerfile copies from InfluxDB's image
    backup-runner    the program's backup runner (runner/Dockerfile), FROM `postgres-server`
    s3               moto's S3 server, HTTP on 5000 and TLS on 443 (s3/)
    the stand-ins    harness/docker_rig/stand_ins (the app stand-in, and the services the rig
                     cannot have for real), each under its own name

Versions are trixie's as this machine's mirror has them; a mirror that moves on fails the build
naming the pin, which is then changed here (and in docs/disaster-recovery.md's figures' note).
"""

from __future__ import annotations

import re
from pathlib import Path

from components.lib.build import REPO_ROOT
from harness.docker_rig import stand_ins
from harness.docker_rig.images import ImageSpec

HERE = Path(__file__).resolve().parent
POSTGRES_VERSION = "17.12-0+deb13u1"
GOSU_VERSION = "1.17-3+b4"
PGBACKREST_VERSION = "2.55.1-1"


def upstream(debian_version: str) -> str:
    """'17.12-0+deb13u1' -> '17.12': the upstream version a tag names."""
    return debian_version.split("-", maxsplit=1)[0]


def pinned(requirements: Path, package: str) -> str:
    """The version `requirements` pins `package` to (`name==version` or `name[extra]==version`)."""
    match = re.search(rf"^{re.escape(package)}(?:\[[^\]]*\])?==(\S+)", requirements.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{requirements} pins no {package}: expected a line '{package}==VERSION'")
    return match.group(1)


BASE = ImageSpec(
    tag="audit-x-rig/debian:trixie",
    description="Debian trixie, minbase, from mmdebstrap (the machine's CA certificates added)",
    rootfs_packages=(),
)
POSTGRES = ImageSpec(
    tag=f"audit-x-rig/postgres:{upstream(POSTGRES_VERSION)}-trixie",
    description="PostgreSQL 17 from Debian trixie, laid out as the official image (its entrypoint)",
    context=HERE / "postgres_base",
    args={"BASE": BASE.tag, "PG_VERSION": POSTGRES_VERSION, "GOSU_VERSION": GOSU_VERSION},
    parents=(BASE,),
)
POSTGRES_SERVER = ImageSpec(
    tag=f"audit-x-rig/postgres-server:{upstream(POSTGRES_VERSION)}-pgbackrest-{upstream(PGBACKREST_VERSION)}",
    description="the program's PostgreSQL image (components/data/postgres_image), pgBackRest from trixie",
    context=REPO_ROOT / "components" / "data" / "postgres_image",
    args={"POSTGRES_IMAGE": POSTGRES.tag, "PGBACKREST_VERSION": PGBACKREST_VERSION, "PGBACKREST_APT_SOURCE": "debian"},
    parents=(POSTGRES,),
)
INFLUX_CLI = ImageSpec(
    tag="audit-x-rig/influx-cli:stand-in-1",
    description="STAND-IN: /usr/local/bin/influx, which says it is not the CLI and fails",
    context=HERE / "influx_cli_stand_in",
    args={"BASE": BASE.tag},
    parents=(BASE,),
)
BACKUP_RUNNER = ImageSpec(
    tag="audit-x-rig/backup-runner:pg17",
    description="the program's backup runner (runner/Dockerfile), FROM postgres-server",
    context=REPO_ROOT / "runner",
    args={"POSTGRES_IMAGE": POSTGRES_SERVER.tag, "INFLUXDB_IMAGE": INFLUX_CLI.tag},
    parents=(POSTGRES_SERVER, INFLUX_CLI),
)
MOTO_VERSION = pinned(REPO_ROOT / "requirements-dev.txt", "moto")
S3 = ImageSpec(
    tag=f"audit-x-rig/moto:{MOTO_VERSION}",
    description="moto's S3 server (the tests' pin), HTTP on 5000, TLS on 443",
    context=HERE / "s3",
    args={"BASE": BASE.tag, "MOTO_VERSION": MOTO_VERSION},
    parents=(BASE,),
)


def _stand_in(image: stand_ins.RigImage, specs: dict[str, ImageSpec]) -> ImageSpec:
    parent = specs[image.built_from.reference] if image.built_from is not None else BASE
    kind = "real" if image.real else "STAND-IN"
    return ImageSpec(
        tag=image.reference,
        description=f"{kind}: {image.keeps}",
        context=image.context,
        args={**image.build_args, "BASE": parent.tag},
        parents=(parent,),
    )


def _stand_ins() -> dict[str, ImageSpec]:
    specs: dict[str, ImageSpec] = {}
    for image in stand_ins.IMAGES:  # in build order: every image after the one it is built from
        specs[image.reference] = _stand_in(image, specs)
    return specs


STAND_INS = _stand_ins()
BY_NAME: dict[str, ImageSpec] = {
    "base": BASE,
    "postgres": POSTGRES,
    "postgres-server": POSTGRES_SERVER,
    "influx-cli": INFLUX_CLI,
    "backup-runner": BACKUP_RUNNER,
    "s3": S3,
    **{reference.removeprefix("audit-x-rig/"): spec for reference, spec in STAND_INS.items()},
}
