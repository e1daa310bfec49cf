"""The shared validated types: each check exists once, and every section that needs it uses it."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from components.settings import Settings
from components.settings.types import EmailAddress, Megabytes, PinnedImage, Seconds


def models(model: type[BaseModel]) -> typing.Iterator[type[BaseModel]]:
    """Every config model reachable from `model`, itself included."""
    yield model
    for field in model.model_fields.values():
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from models(arg)


def fields(kind: str) -> list[tuple[str, str]]:
    return [
        (model.__name__, name)
        for model in set(models(Settings))
        for name in model.model_fields
        if (name == kind or name.endswith(f"_{kind}"))
    ]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("postgres:17.6-bookworm", True),
        ("registry.example/audit_x@sha256:" + "a" * 64, True),
        ("postgres", False),
        ("postgres:latest", False),
        ("Postgres:17", False),
    ],
)
def test_pinned_image(value: str, ok: bool) -> None:
    adapter = TypeAdapter(PinnedImage)
    if ok:
        assert adapter.validate_python(value) == value
    else:
        with pytest.raises(ValidationError, match="pinned"):
            adapter.validate_python(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("oncall@audit-x.example", True), ("a@b", False), ("two@x.example,three@x.example", False), ("x y@z.io", False)],
)
def test_email_address(value: str, ok: bool) -> None:
    adapter = TypeAdapter(EmailAddress)
    if ok:
        assert adapter.validate_python(value) == value
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


def test_sizes_and_durations_refuse_nonsense_even_where_a_field_sets_no_bound() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Megabytes).validate_python(0)
    with pytest.raises(ValidationError):
        TypeAdapter(Seconds).validate_python(-1)
    assert TypeAdapter(Seconds).validate_python(0) == 0


def test_every_image_field_is_a_pinned_image() -> None:
    image_fields = fields("image")
    assert len(image_fields) >= 10
    for model_name, field_name in image_fields:
        model = next(m for m in models(Settings) if m.__name__ == model_name)
        with pytest.raises(ValidationError, match="latest"):
            model.__pydantic_validator__.validate_assignment(model.model_construct(), field_name, "nginx:latest")


def test_every_size_and_duration_refuses_a_negative_value() -> None:
    sizes, durations = fields("mb"), fields("seconds")
    assert len(sizes) >= 15
    assert len(durations) >= 10
    for model_name, field_name in sizes + durations:
        model = next(m for m in models(Settings) if m.__name__ == model_name)
        with pytest.raises(ValidationError):
            model.__pydantic_validator__.validate_assignment(model.model_construct(), field_name, -5)
