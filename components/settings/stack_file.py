"""A stack file (`Pulumi.<stack>.yaml`) read as strictly as the Pulumi CLI reads it.

The CLI's YAML parser (go-yaml v3) refuses a mapping with a key defined twice; PyYAML keeps the
last value, so an offline plan would quietly disagree with `pulumi up`. Anchors and aliases are
refused outright: a stack file has no use for them, and an alias bomb (aliases of aliases)
expands to gigabytes before anything could be checked. Both fail here, before a value is read,
with a message naming the file, the line and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

from components.settings.loader import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without duplicate keys and without anchors or aliases."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            mark = event.start_mark
            what = f"the alias *{anchor}" if isinstance(event, yaml.AliasEvent) else f"the anchor &{anchor}"
            raise ConfigError(
                [
                    f"{mark.name}, line {mark.line + 1}: {what}: expected plain values "
                    "(a stack file uses no anchors or aliases, and Pulumi's parser bounds them)"
                ]
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(
                    [
                        f"{key_node.start_mark.name}, line {key_node.start_mark.line + 1}: the key {key!r} is "
                        f"defined twice (first on line {seen[key] + 1}): expected each key once, as Pulumi requires"
                    ]
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_stack_file(path: Path) -> dict[str, Any]:
    """The document of a stack file, or a ConfigError naming what Pulumi would refuse in it."""
    text = path.read_text()
    try:
        document = yaml.load(text, Loader=_named_loader(path))
    except yaml.YAMLError as error:
        raise ConfigError([f"{path.name}: not valid YAML: {error}"]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError([f"{path.name}: expected a mapping with a `config:` key, got {type(document).__name__}"])
    return document


def _named_loader(path: Path) -> type[_StrictLoader]:
    """The strict loader, with marks that name the file rather than `<unicode string>`."""

    class Named(_StrictLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.name = path.name

    return Named
