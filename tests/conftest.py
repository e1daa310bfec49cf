"""Fixtures shared by the tests: each stack's plan, run once per session under the mock engine,
and the Docker rig (a real Docker engine of the tests' own, harness/docker_rig) with its images.

Every run of the program gets a fresh event loop and fresh mocks (harness.mock_engine); the plans
of the real stack files are cached because many tests read them and none changes them.

A test that uses the rig (asks for `docker_rig` or `rig_images`, directly or through another
fixture) is marked `docker_rig` and put in the xdist group "rig": one worker runs them all, so one
dockerd runs per test session. As root the rig must start, or its tests fail saying why; without
root they are skipped, saying so.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator

import pytest

from harness.docker_rig.engine import Rig, start_engine
from harness.docker_rig.images import RigImages
from harness.mock_engine import Plan, run_program, stack_names

RIG_FIXTURES = {"docker_rig", "rig_images"}

STACKS = stack_names()


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    return {stack: run_program(stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def plan(plans: dict[str, Plan], stack: str) -> Plan:
    return plans[stack]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if RIG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker_rig)
            item.add_marker(pytest.mark.xdist_group("rig"))


@pytest.fixture(scope="session")
def docker_rig() -> Iterator[Rig]:
    """The session's Docker engine (Debian trixie's dockerd), stopped by its pid at the end."""
    if os.geteuid() != 0:
        pytest.skip("the Docker rig needs root (it mounts a root filesystem and starts dockerd): run the tests as root")
    try:
        rig = start_engine()
    except Exception as error:  # noqa: BLE001 - whatever stopped it, the tests fail saying what
        pytest.fail(f"the Docker rig did not start (as root it must): {error}", pytrace=False)
    atexit.register(rig.stop)  # also when the session is interrupted before the teardown
    yield rig
    rig.stop()
    atexit.unregister(rig.stop)


@pytest.fixture(scope="session")
def rig_images(docker_rig: Rig) -> RigImages:
    """`rig_images[spec]`: the image's tag, in the rig (built, loaded from the cache, or there)."""
    return RigImages(docker_rig)
