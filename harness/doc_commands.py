"""The shell commands the README and docs/ give, and a check of each against what it names.

A command is found in a fenced block marked `sh`, `bash` or `console`, or in inline code that
starts with a command this project documents (`python -m`, `docker`, `pulumi`, `make`). Each
simple command (split at pipes, `&&`, `;` and `$(...)`) is checked by what it runs:

- `python -m MODULE ARGS`: the module's own argument parser takes ARGS (the module runs up to its
  `parse_args` and stops there: nothing is done);
- `docker SUB ...`: SUB is a Docker CLI command and every flag is one `docker SUB --help` lists;
  a container it names is a fixed name the plan declares (names with a revision never are: the
  docs reach those with `python -m ops`);
- `pulumi SUB ...`: a subcommand and flags of the Pulumi CLI (PULUMI_COMMANDS, from its docs);
- `make TARGET`: a target of the Makefile;
- anything else: a tool of SHELL_TOOLS.

tests/repo/test_doc_commands.py runs the check over every document.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")))
SHELL_FENCES = ("sh", "bash", "console", "shell")
# Inline code that is a command, not a name: what it starts with.
COMMAND_STARTS = ("python -m ", ".venv/bin/python -m ", "docker ", "pulumi ", "make ")
# The Pulumi CLI's subcommands the docs use, with the flags each takes (pulumi.com/docs/cli/commands).
_PULUMI_COMMON = {"--stack", "-s", "--yes", "-y", "--cwd", "-C", "--non-interactive", "--json", "-j"}
PULUMI_COMMANDS: dict[str, set[str]] = {
    "up": {"--refresh", "--target", "-t", "--skip-preview", "-f", "--diff", "--policy-pack", "--target-dependents"}
    | {"--replace"},
    "preview": {"--refresh", "--diff", "--policy-pack", "--expect-no-changes", "--target", "-t", "--replace"},
    "refresh": {"--target", "-t", "--expect-no-changes", "--skip-preview", "-f"},
    "destroy": {"--target", "-t", "--skip-preview", "-f"},
    "config set": {"--secret", "--path", "--plaintext"},
    "config get": {"--path"},
    "config rm": {"--path"},
    "stack output": {"--show-secrets"},
    "stack": {"--show-urns", "--show-ids"},
    "stack history": {"--show-secrets", "--full-dates"},
    "stack select": {"--create", "-c"},
    "stack export": {"--file"},
    "stack import": {"--file"},
    "stack init": {"--secrets-provider"},
    "state unprotect": {"--all"},
    "login": set(),
}
# Tools a document may name besides those checked above.
SHELL_TOOLS = frozenset(
    {"aws", "cat", "cd", "cp", "createdb", "curl", "date", "dig", "echo", "env", "export", "git", "grep", "head", "jq"}
    | {"ls", "mkdir", "mv", "npm", "pg_ctl", "psql", "rm", "sed", "sh", "sleep", "ssh", "ssh-keyscan", "tail"}
    | {"tar", "test", "true", "influx", "rpk", "redis-cli", "pg_restore", "pg_dump", "wget"}
)
# A placeholder an operator fills in (<tag>, <previous tag>, ...): stands for one argument.
PLACEHOLDER = re.compile(r"<[^<>]+>")


@dataclass(frozen=True)
class DocCommand:
    document: str
    line: int
    text: str

    def where(self) -> str:
        return f"{self.document}:{self.line}: {self.text}"


def documented_commands(paths: Sequence[Path] = DOCUMENTS) -> Iterator[DocCommand]:
    for path in paths:
        text = path.read_text()
        name = path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name
        for block in re.finditer(r"^ *```(\w*)\n(.*?)^ *```", text, re.MULTILINE | re.DOTALL):
            if block.group(1) not in SHELL_FENCES:
                continue
            first = text[: block.start(2)].count("\n") + 1
            joined, start = "", 0
            for offset, raw in enumerate(block.group(2).splitlines()):
                line = raw.strip().removeprefix("$ ")
                start = start if joined else offset
                joined += line.removesuffix("\\") + " "
                if line.endswith("\\"):
                    continue
                command = " ".join(_strip_comment(joined).split())
                joined = ""
                if command:
                    yield DocCommand(name, first + start, command)
        # Inline code may wrap onto the next line; fenced blocks are blanked first (line numbers kept).
        prose = re.sub(r"^ *```.*?^ *```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.M | re.S)
        for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
            code = " ".join(span.group(1).split())
            if code.startswith(COMMAND_STARTS) and code not in ("docker ps", "docker logs", "docker exec"):
                yield DocCommand(name, prose[: span.start()].count("\n") + 1, code)


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # outside quotes, after a space)."""
    quote = ""
    for index, char in enumerate(line):
        if char in "'\"" and not quote:
            quote = char
        elif char == quote:
            quote = ""
        elif char == "#" and not quote and (index == 0 or line[index - 1] == " "):
            return line[:index]
    return line


def simple_commands(command: str) -> list[list[str]]:
    """The simple commands of a command line: split at | && || ; and inside $(...)."""
    inner = re.findall(r"\$\(([^()]*)\)", command)
    outer = re.sub(r"\$\([^()]*\)", "VALUE", command)
    words = shlex.split(PLACEHOLDER.sub("PLACEHOLDER", outer), posix=True)
    commands: list[list[str]] = [[]]
    redirected = False
    for word in words:
        if redirected:  # the file of a redirection
            redirected = False
        elif word in ("|", "&&", "||", ";"):
            commands.append([])
        elif word in (">", ">>", "<"):
            redirected = True
        elif not re.fullmatch(r"\d?>&\d", word):
            commands[-1].append(word)
    for part in inner:
        commands.extend(simple_commands(part))
    return [c for c in commands if c]


class _Parsed(Exception):  # noqa: N818 - not an error: how a parse stops a module before it acts
    """Raised where a module's parser returns: the arguments were taken, nothing was done."""


def python_module_takes(module: str, argv: Sequence[str]) -> str | None:
    """None when `python -m module argv` parses; otherwise why not."""
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self: argparse.ArgumentParser, args: Sequence[str] | None = None, namespace: None = None):
        original(self, args, namespace)
        raise _Parsed

    # runpy runs the module afresh; one imported already (by a test) would make it warn.
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", parse_and_stop),
        mock.patch.object(sys, "argv", [module, *argv]),
        mock.patch.dict(sys.modules),
    ):
        sys.modules.pop(module, None)
        sys.modules.pop(f"{module}.__main__", None)
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        except _Parsed:
            return None
        except SystemExit as exit_:
            if exit_.code in (0, None):  # --help
                return None
            return f"python -m {module} exited {exit_.code} on its arguments {list(argv)}"
        except ImportError as error:
            return f"no module {module}: {error}"
    return f"python -m {module} ran without parsing its arguments (a module that acts before it parses)"


@cache
def docker_flags(subcommand: str) -> dict[str, bool] | None:
    """The flags `docker SUBCOMMAND --help` lists, each mapped to whether it takes a value; None
    if it is no Docker CLI command."""
    result = subprocess.run(
        ["docker", *subcommand.split(), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0 or "Usage:" not in result.stdout:
        return None
    flags: dict[str, bool] = {}
    for short, long, value in re.findall(r"^\s+(?:(-\w), )?(--[\w-]+)(?: (\w+))?\s{2,}", result.stdout, re.MULTILINE):
        for flag in (short, long):
            if flag:
                flags[flag] = bool(value)
    return flags


DOCKER_NAMED = {"exec", "logs", "start", "stop", "restart", "inspect", "cp", "stats", "kill", "rm"}


def check_docker(argv: list[str], fixed_names: set[str], command: DocCommand) -> list[str]:
    """A Docker CLI command: its subcommand, its own flags (up to the first operand), the container
    it names, and the command `docker exec` runs in it."""
    sub = argv[1] if len(argv) > 1 else ""
    if sub in ("image", "container", "system", "network", "volume") and len(argv) > 2:
        sub = f"{sub} {argv[2]}"
    flags = docker_flags(sub)
    if flags is None:
        return [f"`docker {sub}` is not a Docker CLI command"]
    problems = []
    rest = argv[1 + len(sub.split()) :]
    index = 0
    while index < len(rest) and rest[index].startswith("-"):
        flag, has_value = rest[index].split("=", 1)[0], "=" in rest[index]
        letters = [f"-{c}" for c in flag[1:]] if re.fullmatch(r"-[a-zA-Z]{2,}", flag) else [flag]
        unknown = [f for f in letters if f not in flags]
        problems.extend(f"docker {sub}: no flag {f}" for f in unknown)
        index += 2 if not unknown and flags[letters[-1]] and not has_value else 1
    operands = rest[index:]
    if sub in DOCKER_NAMED and operands and operands[0] not in ("VALUE", "PLACEHOLDER"):
        name = operands[0].split(":", 1)[0]
        if name not in fixed_names:
            problems.append(f"docker {sub}: no container is named {name!r} (use `python -m ops`)")
    if sub == "exec" and len(operands) > 1:
        problems.extend(check(DocCommand(command.document, command.line, shlex.join(operands[1:])), fixed_names))
    return problems


def check_pulumi(argv: list[str]) -> list[str]:
    longest_first = sorted(PULUMI_COMMANDS, key=lambda s: -len(s.split()))
    sub = next((s for s in longest_first if argv[1 : 1 + len(s.split())] == s.split()), None)
    # `pulumi stack` alone takes flags only: a word after it is a subcommand it does not have.
    if sub is None or (sub == "stack" and any(not word.startswith("-") for word in argv[2:])):
        return [f"`pulumi {' '.join(argv[1:3])}` is not a Pulumi command the docs may use"]
    allowed = PULUMI_COMMANDS[sub] | _PULUMI_COMMON
    return [
        f"pulumi {sub}: no flag {word.split('=', 1)[0]}"
        for word in argv[1 + len(sub.split()) :]
        if word.startswith("-") and word.split("=", 1)[0] not in allowed
    ]


def _module_missing(module: str) -> str | None:
    if module == "...":  # prose: "`python -m ...`", any module
        return None
    try:
        return None if importlib.util.find_spec(module) is not None else f"no module {module}"
    except ImportError as error:
        return f"no module {module}: {error}"


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))


def check(command: DocCommand, fixed_names: set[str]) -> list[str]:
    """What is wrong with one documented command (nothing: [])."""
    problems: list[str] = []
    for words in simple_commands(command.text):
        # VAR=value before a command sets its environment.
        argv = list(itertools.dropwhile(lambda word: re.fullmatch(r"[A-Z_]+=\S*", word) is not None, words))
        if not argv:
            continue
        tool = argv[0].removeprefix(".venv/bin/")
        if tool in ("python", "python3") and argv[1:2] == ["-m"] and len(argv) > 2:
            inside = argv[argv.index("--") + 1 :] if "--" in argv else []
            # A bare `python -m MODULE`, or a synopsis (`STACK`, `[--image IMAGE]`), names the module
            # in prose; a command with real arguments is parsed.
            synopsis = any(re.fullmatch(r"\[.*|.*\]|\.\.\.|[A-Z][A-Z_]*(=[A-Z_]+)?", word) for word in argv[3:])
            why = _module_missing(argv[2]) if synopsis or len(argv) == 3 else python_module_takes(argv[2], argv[3:])
            if why:
                problems.append(why)
            if argv[2] == "ops" and inside:  # the command `ops exec` runs in the container
                problems.extend(check(DocCommand(command.document, command.line, shlex.join(inside)), fixed_names))
        elif tool == "docker":
            problems.extend(check_docker(argv, fixed_names, command))
        elif tool == "pulumi":
            problems.extend(check_pulumi(argv))
        elif tool == "make":
            problems.extend(f"make: no target {t}" for t in argv[1:] if "=" not in t and t not in make_targets())
        elif tool not in SHELL_TOOLS:
            problems.append(f"{tool}: not a command the docs may name")
    return problems
