"""Fixtures of the real Pulumi engine's tests: the binaries (built once, cached by content) and a
workspace per test (its own Pulumi home and file state backend, the project's plugins installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.pulumi_engine import build
from harness.pulumi_engine.cli import Workspace


@pytest.fixture(scope="session")
def engine_bin() -> Path:
    return build.ensure_built()


@pytest.fixture
def workspace(tmp_path: Path, engine_bin: Path) -> Workspace:
    return Workspace.create(tmp_path, bin_dir=engine_bin)
