"""The SDK internals the mock engine uses still exist: an SDK upgrade that moves one fails here,
by name, before it fails every plan-reading test in a way that says nothing."""

from __future__ import annotations

import pytest

from harness import pulumi_sdk


@pytest.mark.parametrize("name", sorted(pulumi_sdk.USED))
def test_the_sdk_still_has(name: str) -> None:
    try:
        found = pulumi_sdk.USED[name]()
    except (AttributeError, LookupError) as error:
        pytest.fail(f"the Pulumi SDK no longer has {name} ({error}): update harness/pulumi_sdk.py")
    assert found is not None


def test_secrets_are_still_marked_on_the_wire_as_the_decoder_expects() -> None:
    # The plan masks secrets by this signature; a changed value would print secrets in plans.
    assert pulumi_sdk.SECRET_SIGNATURE_KEY == "4dabf18193072939515e22adb298388d"
    assert pulumi_sdk.SECRET_SIGNATURE == "1b47061264138c4ac30d75fd1eb44270"
