"""Bad config never gives a traceback: random and malformed values always end in the settings'
own error (every problem named by its key), and a stack that fails declares nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.settings import PROVIDED_SECRET_KEYS, ConfigError, load_settings
from harness.mock_engine import load_stack_config, try_program

BASE = load_stack_config("staging")
TOP_KEYS = sorted(BASE)
SECRET_MARK = "S3CR3TMARK"
OBJECT_KEYS = sorted(k for k, v in BASE.items() if v.startswith("{"))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "latest", "x:latest", "-1", "1e999", "null", "{", "[]", "true", "02:61", "ssh://"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)


def as_config_text(value: Any) -> str:
    """What Pulumi would hand the program: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def broken_configs(draw: st.DrawFn) -> tuple[dict[str, str], frozenset[str]]:
    config = dict(BASE)
    secret_keys: set[str] = set()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        choice = draw(st.sampled_from(["replace", "nested", "remove", "unknown", "secret"]))
        if choice == "replace":
            config[draw(st.sampled_from(TOP_KEYS))] = as_config_text(draw(values))
        elif choice == "nested":
            key = draw(st.sampled_from(OBJECT_KEYS))
            document = json.loads(config[key]) if config.get(key, "").startswith("{") else {}
            field = draw(st.sampled_from([*document.keys(), "extra"])) if isinstance(document, dict) else "extra"
            if isinstance(document, dict):
                document[field] = draw(values)
            config[key] = json.dumps(document)
        elif choice == "remove":
            config.pop(draw(st.sampled_from(TOP_KEYS)), None)
        elif choice == "secret":
            key = f"audit-x:{draw(st.sampled_from(PROVIDED_SECRET_KEYS))}"
            # Marked, so a leak of it into an error message cannot be a coincidence.
            config[key] = SECRET_MARK + as_config_text(draw(values))
            if draw(st.booleans()):  # set with --secret, or (wrongly) in plain text
                secret_keys.add(key)
        else:
            config[f"audit-x:{draw(st.text(min_size=1, max_size=10))}"] = as_config_text(draw(values))
    return config, frozenset(secret_keys)


def assert_clear(error: ConfigError) -> None:
    assert error.problems, "a ConfigError lists its problems"
    for problem in error.problems:
        assert problem.startswith(("audit-x:", "aws:")), problem
    assert str(error).startswith("Invalid stack config (")


@settings(max_examples=400, deadline=None)
@given(broken_configs())
def test_any_config_either_loads_or_fails_with_the_settings_error(
    case: tuple[dict[str, str], frozenset[str]],
) -> None:
    config, secret_keys = case
    try:
        load_settings(config, secret_keys)
    except ConfigError as error:
        assert_clear(error)
        assert SECRET_MARK not in str(error), "a provided secret's value is never echoed"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_configs())
def test_a_stack_with_bad_config_declares_nothing(case: tuple[dict[str, str], frozenset[str]]) -> None:
    config, secret_keys = case
    plain = {k: v for k, v in config.items() if k not in secret_keys}
    plan, error = try_program("staging", config=plain, secrets={k: config[k] for k in secret_keys})
    if error is not None:
        assert isinstance(error, ConfigError), f"{type(error).__name__}: {error}"
        assert_clear(error)
        assert plan.resources == []
