"""The validated types the config sections share: each check written once, as an annotated type.

A section declares `image: PinnedImage = "postgres:17.6-bookworm"` or `acme_email: EmailAddress`
and gets the check with it; no section copies a validator.
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

PROJECT = "audit-x"

# An image reference pinned to a version tag or a digest. `latest` (explicit or implied by a
# missing tag) is refused: a pull must always mean the same bits.
_IMAGE_TAG = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/:-]*[a-z0-9]):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
_IMAGE_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$")


def validate_image(value: str) -> str:
    if _IMAGE_DIGEST.match(value):
        return value
    match = _IMAGE_TAG.match(value)
    if not match:
        raise ValueError("expected an image pinned to a tag or digest, such as 'postgres:17.6-bookworm'")
    if match.group("tag") == "latest":
        raise ValueError("expected a pinned version tag or digest, not 'latest'")
    return value


def image_tag(reference: str) -> str:
    """The tag of a pinned reference, or its digest when pinned by digest."""
    if "@" in reference:
        return reference.rsplit("@", 1)[1]
    return reference.rsplit(":", 1)[1]


PinnedImage = Annotated[str, AfterValidator(validate_image), Field(description="image pinned to a tag or digest")]
# One pattern for every address the config takes (alert recipients, the ACME account, SMTP's sender):
# no separators a header or a list would split on.
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s;,]+@[^@\s;,]+\.[a-z]{2,}$")]
DnsName = Annotated[
    str,
    StringConstraints(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"),
]


def validate_docker_host(value: str) -> str:
    """`ssh://user@host[:port]` or `unix:///path`. Plain `tcp://` is an unauthenticated,
    unencrypted Docker API (root on the host to whoever reaches it), and a user or host that
    starts with `-` or holds shell characters reaches ssh as an option (`-oProxyCommand=...`)."""
    ssh = _DOCKER_SSH.match(value)
    if ssh:
        port = ssh.group("port")
        if port is None or 1 <= int(port) <= 65535:
            return value
    if _DOCKER_UNIX.match(value) and "/../" not in f"{value}/":
        return value
    raise ValueError(
        "expected ssh://user@host or ssh://user@host:port (user and host of letters, digits, '.', '_', '-', "
        "not starting with '-'; a port of 1 to 65535), or unix:///absolute/path/to/docker.sock"
    )


_DOCKER_SSH = re.compile(
    r"^ssh://[a-z_][a-z0-9_.-]{0,31}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[1-9]\d{0,4}))?$"
)
_DOCKER_UNIX = re.compile(r"^unix:///[A-Za-z0-9._/-]+$")
DockerHost = Annotated[str, AfterValidator(validate_docker_host)]
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,23}$")]
# A size in MiB (never zero) and a duration in whole seconds (never negative); each field narrows
# the range with its own Field(ge=..., le=...), which adds to these bounds rather than replacing them.
Megabytes = Annotated[int, annotated_types.Gt(0)]
Seconds = Annotated[int, annotated_types.Ge(0)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1)]


def _scalar_kind(annotation: Any) -> type | None:
    """bool, int or float when a field holds one of those (or None), else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = {arg for arg in get_args(annotation) if arg is not type(None)}
        return _scalar_kind(kinds.pop()) if len(kinds) == 1 else None
    return annotation if annotation in (bool, int, float) else None


_WHOLE_NUMBER = re.compile(r"^-?\d+$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def strict_scalar(kind: type, value: Any) -> Any:
    """A boolean is `true` or `false` and a number is a number: pydantic's own coercion would
    take `true` for 1, `1` or `yes` for true, and 2.0 for 2. Pulumi hands top-level values over
    as text, so their text form is read here, strictly."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError("expected true or false")
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not true or false" if kind is int else "expected a number")
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _WHOLE_NUMBER.match(value):
            return int(value)
        raise ValueError("expected a whole number (an integer)")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    raise ValueError("expected a number")


class ConfigModel(BaseModel):
    """Stack config: camelCase keys, unknown keys refused, instances immutable, and booleans and
    numbers taken only as what they are (`strict_scalar`)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        kind = _scalar_kind(field.annotation) if field else None
        if kind is None or value is None:
            return value
        return strict_scalar(kind, value)
