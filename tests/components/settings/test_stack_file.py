"""A stack file is read as strictly as the Pulumi CLI reads it: a key twice, an anchor or an
alias stops everything, naming the file and the line, before a value is read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.lib.build import REPO_ROOT
from components.settings import ConfigError
from components.settings.stack_file import read_stack_file
from harness.mock_engine import load_stack_config


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_stack_config("broken", path)
    return raised.value.problems


def test_both_stack_files_read_as_plain_yaml_reads_them() -> None:
    for stack in ("prod", "staging"):
        path = REPO_ROOT / f"Pulumi.{stack}.yaml"
        assert read_stack_file(path) == yaml.safe_load(path.read_text())


def test_a_key_defined_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    text = "config:\n  audit-x:environment: staging\n  audit-x:domain: a.example.com\n  audit-x:environment: prod\n"
    assert problems(tmp_path, text) == [
        "Pulumi.broken.yaml, line 4: the key 'audit-x:environment' is defined twice (first on line 2): "
        "expected each key once, as Pulumi requires"
    ]


def test_a_nested_key_defined_twice_is_refused(tmp_path: Path) -> None:
    text = "config:\n  audit-x:edge:\n    rateLimitAverage: 20\n    rateLimitAverage: 2000\n"
    assert problems(tmp_path, text)[0].startswith("Pulumi.broken.yaml, line 4: the key 'rateLimitAverage'")


def test_an_anchor_is_refused(tmp_path: Path) -> None:
    text = "config:\n  audit-x:redis: &sizes {memoryLimitMb: 512}\n  audit-x:redpanda: *sizes\n"
    assert problems(tmp_path, text) == [
        "Pulumi.broken.yaml, line 2: the anchor &sizes: expected plain values "
        "(a stack file uses no anchors or aliases, and Pulumi's parser bounds them)"
    ]


def test_an_alias_bomb_stops_at_its_first_anchor_without_expanding(tmp_path: Path) -> None:
    # Nine levels of ten aliases each: a billion strings if it were expanded.
    lines = ["config:", '  a0: &a0 ["x"]']
    lines += [f"  a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    assert problems(tmp_path, "\n".join(lines) + "\n")[0].startswith("Pulumi.broken.yaml, line 2: the anchor &a0")


def test_a_lone_alias_is_refused(tmp_path: Path) -> None:
    assert "the alias *nowhere" in problems(tmp_path, "config:\n  audit-x:app: *nowhere\n")[0]


def test_a_document_that_is_no_mapping_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "- config\n") == ["Pulumi.broken.yaml: expected a mapping with a `config:` key, got list"]
