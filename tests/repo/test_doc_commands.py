"""Every shell command in README.md and docs/ names only what exists (harness/doc_commands.py):
an operator command its own parser takes, a container the plan declares under a fixed name, a
Docker, Pulumi or make command and flags that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.lib import tokens
from harness.doc_commands import DocCommand, check, documented_commands
from harness.mock_engine import REPO_ROOT, run_program, stack_names


@pytest.fixture(scope="module")
def fixed_names() -> set[str]:
    """The containers of every stack whose Docker name carries no revision, and `$ENV`'s."""
    names: set[str] = set()
    for stack in stack_names():
        for resource in run_program(stack).of_type(tokens.CONTAINER):
            name = resource.inputs["name"]
            if name == resource.name:
                names.add(name)
    return names


def test_every_documented_command_names_only_what_exists(fixed_names: set[str]) -> None:
    commands = list(documented_commands())
    assert len(commands) >= 60
    problems = []
    for command in commands:
        for env in stack_names():
            text = command.text
            for placeholder in ("$ENV", "<env>", "<stack>"):
                text = text.replace(placeholder, env)
            expanded = DocCommand(command.document, command.line, text)
            problems.extend(f"{command.where()}\n    {problem}" for problem in check(expanded, fixed_names))
    assert not sorted(set(problems)), "\n".join(sorted(set(problems)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docker exec audit-x-prod-backup python -m runner status", "no container is named 'audit-x-prod-backup'"),
        ("docker logs --tial 10 audit-x-prod-postgres", "docker logs: no flag --tial"),
        ("python -m ops exec prod backup -- python -m runner statuss", "python -m runner exited 2"),
        ("python -m ops reboot prod web", "python -m ops exited 2"),
        ("python -m ops logs prod webb", None),
        ("pulumi up --stack prod --refersh", "pulumi up: no flag --refersh"),
        ("pulumi stack outputs dockerHost", "is not a Pulumi command"),
        ("make tests", "make: no target tests"),
        ("rsync -a x y", "rsync: not a command the docs may name"),
        ("docker exec audit-x-prod-postgres psql -U audit_x", None),
        ("python -m ops exec prod backup -- python -m runner pitr-restore --in-place --to-latest", None),
    ],
)
def test_a_wrong_command_is_named_with_what_is_wrong(fixed_names: set[str], text: str, expected: str | None) -> None:
    problems = check(DocCommand("x.md", 1, text), fixed_names)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_commands_are_found_in_shell_blocks_and_inline_code(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `python -m ops status prod` first.\n\n```sh\nmake plan   # offline\npulumi up \\\n  --stack prod\n```\n"
        "```\nnot a command\n```\n"
        "1. Stop: `docker stop audit-x-prod-web-0\n   audit-x-prod-worker-sidekiq-0` (wrapped).\n"
    )
    found = [(c.line, c.text) for c in documented_commands([doc])]
    assert sorted(found) == [
        (1, "python -m ops status prod"),
        (4, "make plan"),
        (5, "pulumi up --stack prod"),
        (11, "docker stop audit-x-prod-web-0 audit-x-prod-worker-sidekiq-0"),
    ]


def test_the_readme_says_where_the_python_commands_run() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "`. .venv/bin/activate` first, or call\n`.venv/bin/python -m ...`" in readme
    ops_block = readme.split("## Operating an environment", 1)[1].split("## ", 1)[0]
    assert {"status", "logs", "exec", "console", "restart", "rerun"} <= set(
        re.findall(r"python -m ops (\w+)", ops_block)
    )
