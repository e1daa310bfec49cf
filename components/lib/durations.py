"""Durations written the way the Docker provider reads them back.

The provider stores a container's health-check durations as Go's `time.Duration.String()`
(terraform-provider-docker v4.5.0, resource_docker_container_funcs.go): `60s` comes back as
`1m0s`. A duration written any other way shows as a change on every refresh, so every duration
the program gives Docker goes through `go_duration`.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_seconds(value: str) -> float:
    """`"90s"` -> 90, `"1m30s"` -> 90: a Docker duration in seconds."""
    parts = _PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        raise ValueError(f"not a duration: {value!r} (expected such as '30s', '1m30s')")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def go_duration(value: str | int) -> str:
    """Go's time.Duration.String() of whole seconds: 60 or "60s" -> "1m0s", 3600 -> "1h0m0s"."""
    total = value if isinstance(value, int) else parse_seconds(value)
    if total != int(total):
        raise ValueError(f"{value!r}: only whole seconds are written (Go prints fractions differently)")
    hours, rest = divmod(int(total), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"
