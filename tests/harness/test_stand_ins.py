"""The registry of the rig's extra images (harness/docker_rig/stand_ins/): each one buildable from
the rig's base, each stand-in labelled as one and named in the README, each script shellchecked."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.docker_rig.stand_ins import IMAGES, README, STAND_IN_LABEL, STAND_INS_DIR, RigImage, by_reference


def dockerfile(image: RigImage) -> str:
    return (image.context / "Dockerfile").read_text()


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.reference)
def test_every_image_builds_from_the_rigs_base(image: RigImage) -> None:
    lines = [line for line in dockerfile(image).splitlines() if line and not line.startswith("#")]
    assert lines[:2] == ["ARG BASE", "FROM ${BASE}"]
    declared_args = set(re.findall(r"^ARG (\w+)", dockerfile(image), re.M))
    assert set(image.build_args) <= declared_args, f"{image.reference}: build args its Dockerfile does not declare"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.reference)
def test_every_stand_in_says_so_in_its_label_and_the_readme(image: RigImage) -> None:
    labelled = re.search(rf'{re.escape(STAND_IN_LABEL)}="{image.context.name}"', dockerfile(image)) is not None
    assert labelled != image.real
    row = next(line for line in README.read_text().splitlines() if f"`{image.name}:" in line)
    assert ("**stand-in**" in row) != image.real
    assert f":{image.tag}`" in row


def test_image_names_are_unique_and_found_by_reference() -> None:
    references = [image.reference for image in IMAGES]
    assert len(set(references)) == len(references)
    assert by_reference("audit-x-rig/app:stand-in-1").build_args == {"MIGRATIONS_UP_TO": "20260101000001"}
    with pytest.raises(KeyError, match="audit-x-rig/app:latest"):
        by_reference("audit-x-rig/app:latest")


@pytest.mark.parametrize(
    "script",
    sorted(p for p in STAND_INS_DIR.glob("*/bin/*") if p.is_file()),
    ids=lambda p: f"{p.parent.parent.name}/{p.name}",
)
def test_every_stand_in_script_passes_shellcheck(script: Path) -> None:
    binary = shutil.which("shellcheck")
    assert binary is not None, "no shellcheck: `make test` installs it (harness/system_packages.sh)"
    result = subprocess.run([binary, "--shell=sh", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
