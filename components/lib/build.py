"""Images built on the environment's Docker host from a directory of this repository.

The tag is a hash of the directory's files and the build arguments: a change of either is a new
tag, so the containers built from it are replaced (the provider rebuilds a changed build under
the same name, which would not replace them). No registry is involved: built where it runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pulumi
import pulumi_docker as docker

REPO_ROOT = Path(__file__).resolve().parents[2]


def source_digest(directory: Path) -> str:
    """A hash of a directory's files (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(directory).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def image_tag_for(build_args: dict[str, str], directory: Path) -> str:
    """The tag of an image built from `directory` with `build_args`."""
    inputs = json.dumps(build_args, sort_keys=True)
    return hashlib.sha256(f"{source_digest(directory)}|{inputs}".encode()).hexdigest()[:16]


def built_image(
    name: str,
    context: str,
    build_args: dict[str, str],
    parent: pulumi.Resource,
    *,
    after: docker.Image | None = None,
) -> docker.Image:
    """`context` is relative to the project, where Pulumi runs the program: an absolute path would
    differ between a laptop and CI and show up as a change in every preview. `after`: an image
    built here that this one is built FROM (a build argument names it)."""
    return docker.Image(
        f"{name}-image",
        image_name=f"{name}:{image_tag_for(build_args, REPO_ROOT / context)}",
        build=docker.DockerBuildArgs(
            context=context, dockerfile=f"{context}/Dockerfile", args=build_args, platform="linux/amd64"
        ),
        skip_push=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[after] if after else None),
    )
