"""Scripts and free-form configs kept as files beside the component that ships them.

A file is read from the component's own folder and, where it has `${name}` placeholders,
filled in with `string.Template`: a placeholder left without a value is an error, never an
empty string in a deployed config. Shell scripts take no placeholders: they read what they need
from their container's environment, so each can be read and checked (`shellcheck`) as it ships.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

COMPONENTS_DIR = Path(__file__).resolve().parent.parent


def shipped_file(component_file: str, name: str) -> Path:
    """The file `name` beside `component_file` (a component's `__file__`)."""
    path = Path(component_file).resolve().parent / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the component ships it")
    return path


def read_shipped(component_file: str, name: str) -> str:
    return shipped_file(component_file, name).read_text()


def render_shipped(component_file: str, name: str, **values: object) -> str:
    """The file with every `${placeholder}` filled in; a missing value raises KeyError naming it."""
    return Template(read_shipped(component_file, name)).substitute({k: str(v) for k, v in values.items()})


def shell_scripts() -> list[Path]:
    """Every shell script a component ships: what the tests run shellcheck over."""
    return sorted(COMPONENTS_DIR.rglob("*.sh"))
