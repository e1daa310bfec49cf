"""Fixtures shared by the tests: each stack's plan, run once per session under the mock engine,
and the Docker rig (a real Docker engine of the tests' own, harness/docker_rig) with its images.

Every run of the program gets a fresh event loop and fresh mocks (harness.mock_engine); the plans
of the real stack files are cached because many tests read them and none changes them.

A test that uses the rig (asks for `docker_rig` or `rig_images`, directly or through another
fixture) is marked `docker_rig` and put in the xdist group "rig": one worker runs them all, so one
dockerd runs per test session. Such tests live under RIG_TEST_DIRS, which is how the scheduler
knows them (see RigGroupScheduling). As root the rig must start, or its tests fail saying why;
without root they are skipped, saying so.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator

import pytest
from xdist.scheduler import LoadGroupScheduling

from harness.docker_rig.engine import Rig, start_engine
from harness.docker_rig.images import RigImages
from harness.mock_engine import Plan, run_program, stack_names

RIG_FIXTURES = {"docker_rig", "rig_images"}
RIG_TEST_DIRS = ("tests/rig/", "tests/engine/")

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


class RigGroupScheduling(LoadGroupScheduling):
    """`--dist loadgroup`, with every test under RIG_TEST_DIRS in the group "rig".

    xdist 3.8 groups by renaming each marked item's `_nodeid`, which pytest 9 no longer reads (a
    node's id is its `_id`): its xdist_group marks reach no scheduler. The scheduler sees node ids
    only, so the rig's tests are known by their folder."""

    def _split_scope(self, nodeid: str) -> str:
        return "rig" if nodeid.startswith(RIG_TEST_DIRS) else super()._split_scope(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadGroupScheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    return RigGroupScheduling(config, log)  # pyright: ignore[reportArgumentType] - xdist's Producer


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if RIG_FIXTURES & set(getattr(item, "fixturenames", ())):
            if not item.nodeid.startswith(RIG_TEST_DIRS):
                raise pytest.UsageError(
                    f"{item.nodeid} uses the Docker rig: put it under {' or '.join(RIG_TEST_DIRS)}, where the"
                    " scheduler runs every rig test on one worker (tests/conftest.py)"
                )
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
