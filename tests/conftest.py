"""Fixtures shared by the tests: each stack's plan, run once per session under the mock engine.

Every run of the program gets a fresh event loop and fresh mocks (harness.mock_engine); the plans
of the real stack files are cached because many tests read them and none changes them.
"""

from __future__ import annotations

import pytest

from harness.mock_engine import Plan, run_program, stack_names

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
