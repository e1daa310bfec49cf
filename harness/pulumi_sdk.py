"""The Pulumi SDK's private names the mock engine relies on, behind one small adapter.

The SDK has no public API for running a program under mocks in-process and reading back what
reached the engine; these are the few internals that do it. Every one is named here, once, so
that an SDK upgrade that moves one fails in `tests/harness/test_pulumi_sdk.py` with its name, instead of
deep inside a test about something else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime import stack as runtime_stack
from pulumi_policy import proxy as policy_proxy

# How a secret travels on the wire: {SECRET_SIGNATURE_KEY: SECRET_SIGNATURE, "value": ...}.
SECRET_SIGNATURE_KEY: str = rpc._special_sig_key
SECRET_SIGNATURE: str = rpc._special_secret_sig


def reset_root_resource() -> None:
    """Forget the stack resource of an earlier run, so the next run registers its own."""
    runtime_settings.ROOT.set(None)


def root_resource() -> pulumi.Resource | None:
    return runtime_settings.get_root_resource()


def pending_outputs() -> set[asyncio.Task[Any]]:
    """The outputs the SDK is still resolving (a context property its stubs declare as a method)."""
    return runtime_settings.SETTINGS.outputs  # pyright: ignore[reportAttributeAccessIssue]


async def run_in_stack(program: Callable[[], None]) -> None:
    """Run `program` the way `pulumi up` does: inside a stack resource, waiting for every output."""
    await runtime_stack.run_pulumi_func(program)


# How the policy SDK hands a pack a value that is unknown during a preview: the proxy raises
# UnknownValueError when a policy reads one, and the SDK turns that into an advisory diagnostic.
UNKNOWN_STRING: str = policy_proxy.UNKNOWN_STRING_VALUE
UnknownValueError = policy_proxy.UnknownValueError
unknown_checking_proxy = policy_proxy.unknown_checking_proxy

# What tests/harness/test_pulumi_sdk.py checks exists, by the name the SDK gives it.
USED = {
    "pulumi.runtime.rpc._special_sig_key": lambda: rpc._special_sig_key,
    "pulumi.runtime.rpc._special_secret_sig": lambda: rpc._special_secret_sig,
    "pulumi.runtime.settings.ROOT": lambda: runtime_settings.ROOT.set,
    "pulumi.runtime.settings.SETTINGS.outputs": pending_outputs,
    "pulumi.runtime.settings.get_root_resource": lambda: runtime_settings.get_root_resource,
    "pulumi.runtime.stack.run_pulumi_func": lambda: runtime_stack.run_pulumi_func,
    "pulumi_policy.proxy.UNKNOWN_STRING_VALUE": lambda: policy_proxy.UNKNOWN_STRING_VALUE,
    "pulumi_policy.proxy.UnknownValueError": lambda: policy_proxy.UnknownValueError,
    "pulumi_policy.proxy.unknown_checking_proxy": lambda: policy_proxy.unknown_checking_proxy,
}
