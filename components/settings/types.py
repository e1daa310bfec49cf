"""The validated types the config sections share: each check written once, as an annotated type.

A section declares `image: PinnedImage = "postgres:17.6-bookworm"` or `acme_email: EmailAddress`
and gets the check with it; no section copies a validator.
"""

from __future__ import annotations

import re
from typing import Annotated

import annotated_types
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
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
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,23}$")]
# A size in MiB (never zero) and a duration in whole seconds (never negative); each field narrows
# the range with its own Field(ge=..., le=...), which adds to these bounds rather than replacing them.
Megabytes = Annotated[int, annotated_types.Gt(0)]
Seconds = Annotated[int, annotated_types.Ge(0)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1)]


class ConfigModel(BaseModel):
    """Stack config: camelCase keys, unknown keys refused, instances immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
