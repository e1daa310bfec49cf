"""No deprecated resource or argument is used: declaring a stack warns about nothing."""

from __future__ import annotations

import logging
import warnings

import pytest

from components.lib import tokens
from harness.mock_engine import run_program


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_declaring_a_stack_emits_no_deprecation(stack: str, caplog: pytest.LogCaptureFixture) -> None:
    run_program(stack)  # imports done, so only what declaring the resources emits is left
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        plan = run_program(stack)
    assert plan.resources
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []
    # The providers' SDKs also log deprecations through the engine's log.
    assert [r.getMessage() for r in caplog.records if "deprecat" in r.getMessage().lower()] == []


def test_only_current_s3_resources_are_declared() -> None:
    plan = run_program("prod")
    s3_types = {r.type for r in plan.resources if r.type.startswith("aws:s3/")}
    assert s3_types == {
        tokens.BUCKET,
        tokens.BUCKET_LIFECYCLE,
        "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketVersioning:BucketVersioning",
    }
