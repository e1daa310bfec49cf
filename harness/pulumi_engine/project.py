"""A copy of the Pulumi project for a run of the real CLI: `pulumi stack init` and `config set`
write the stack files, and the repository's own must stay as they are."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.pulumi_engine.build import REPO_ROOT

# What `pulumi up` reads: the program, its components, the build contexts of the images it
# builds (runner/, components/data/postgres_image/), the policy pack, the project and stack files.
PROGRAM_PARTS = ("__main__.py", "Pulumi.yaml", "components", "runner", "policy")


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "venv")
    for part in PROGRAM_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=ignore)
        else:
            shutil.copy2(source, dest / part)
    for stack_file in REPO_ROOT.glob("Pulumi.*.yaml"):
        shutil.copy2(stack_file, dest / stack_file.name)
    # The project's runtime option `virtualenv: .venv`: the pinned venv, shared.
    (dest / ".venv").symlink_to(REPO_ROOT / ".venv")
    # The policy pack's `virtualenv: venv`: the same pinned venv holds pulumi-policy and its needs.
    (dest / "policy" / "venv").symlink_to(REPO_ROOT / ".venv")
    return dest
