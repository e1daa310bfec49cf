"""Every container image the stacks declare, taken from their plans: what Trivy scans in CI.

    python -m ops.images [--json]

Pulled images by their pinned reference; the images built on each Docker host (the backup runner,
PostgreSQL with pgBackRest) by the images they are built FROM (their `*_IMAGE` build arguments),
since those carry their operating system and PostgreSQL. No hand-kept list: add a service and it is scanned.
"""

from __future__ import annotations

import argparse
import json
import sys

from components.lib.tokens import BUILT_IMAGE, REMOTE_IMAGE
from harness.mock_engine import DeclaredResource, run_program, stack_names


def bases(image_name: str, built: dict[str, DeclaredResource]) -> set[str]:
    """The pulled images a locally built one comes FROM (its `*_IMAGE` build arguments; other
    arguments are package versions), through any image built here in between."""
    args = built[image_name].plain_inputs["build"].get("args", {})
    found: set[str] = set()
    for name, value in args.items():
        if name.endswith("_IMAGE"):
            found |= bases(value, built) if value in built else {value}
    return found


def declared_images(stacks: list[str] | None = None) -> list[str]:
    images: set[str] = set()
    for stack in stacks or stack_names():
        plan = run_program(stack)
        images |= {r.plain_inputs["name"] for r in plan.of_type(REMOTE_IMAGE)}
        built = {image.plain_inputs["imageName"]: image for image in plan.of_type(BUILT_IMAGE)}
        for image in built.values():
            images |= bases(image.plain_inputs["imageName"], built)
    return sorted(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.images", description="Images the stacks declare.")
    parser.add_argument("--json", action="store_true", help="one JSON array instead of a line per image")
    args = parser.parse_args(argv)
    images = declared_images()
    print(json.dumps(images) if args.json else "\n".join(images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
