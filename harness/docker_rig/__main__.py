"""The Docker rig by hand, as root (the tests start their own; this one is for people and for a
Pulumi stack that needs a Docker host):

    python -m harness.docker_rig up       # start a rig, give it every image; prints its socket
    python -m harness.docker_rig images   # the images (in the running rig, or a rig of its own)
    python -m harness.docker_rig down     # stop the rig `up` started, by its pid

`up` prints `DOCKER_HOST=unix:///tmp/audit-x-rig-.../docker.sock`: what a Docker client is given,
or a stack's `docker:host`. The images are tagged as `images` lists them (`audit-x-rig/...`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.docker_rig import catalogue, debian
from harness.docker_rig.engine import Rig, RigError, engine, start_engine
from harness.docker_rig.images import RigImages


def record_file() -> Path:
    return debian.cache_dir() / "up.json"


def recorded() -> Rig | None:
    """The rig `up` started, if it still runs."""
    try:
        fields = json.loads(record_file().read_text())
    except (OSError, ValueError):
        return None
    rig = Rig(
        pid=fields["pid"],
        state=Path(fields["state"]),
        pool=fields["pool"],
        cgroup_parent=fields["cgroup_parent"],
        namespace=fields["namespace"],
    )
    return rig if rig.running() else None


def give_images(rig: Rig, names: list[str]) -> None:
    images = RigImages(rig)
    for name in names:
        images[catalogue.BY_NAME[name]]
    for tag, how in images.provenance.how.items():
        print(f"{tag:52} {how:22} {images.provenance.seconds[tag]:8.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.docker_rig", description="The Docker rig by hand.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a rig and give it the images; prints its socket")
    up.add_argument("--no-images", action="store_true", help="start the engine only")
    commands.add_parser("down", help="stop the rig `up` started")
    images = commands.add_parser("images", help="build, load or list the images")
    images.add_argument("names", nargs="*", help=f"only these, of {', '.join(catalogue.BY_NAME)} (default: all)")
    args = parser.parse_args(argv)
    names = list(getattr(args, "names", None) or catalogue.BY_NAME)
    if unknown := [name for name in names if name not in catalogue.BY_NAME]:
        parser.error(f"no image named {', '.join(unknown)}: expected one of {', '.join(catalogue.BY_NAME)}")
    try:
        if args.command == "up":
            if (running := recorded()) is not None:
                print(f"a rig runs already (pid {running.pid}): DOCKER_HOST={running.host}")
                return 0
            rig = start_engine()
            fields = {"pid": rig.pid, "state": str(rig.state), "pool": rig.pool}
            fields |= {"cgroup_parent": rig.cgroup_parent, "namespace": rig.namespace}
            record_file().write_text(json.dumps(fields))
            if not args.no_images:
                give_images(rig, names)
            print(f"DOCKER_HOST={rig.host}")
        elif args.command == "down":
            if (running := recorded()) is None:
                print("no rig started by `up` runs")
                return 0
            running.stop()
            record_file().unlink(missing_ok=True)
            print(f"stopped the rig (pid {running.pid})")
        elif (running := recorded()) is not None:
            give_images(running, names)
        else:
            with engine() as rig:
                give_images(rig, names)
    except (RigError, PermissionError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
