"""The README and docs stay true to the code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components.settings import load_settings
from harness.mock_engine import REPO_ROOT, load_stack_config
from ops import preview as preview_tool
from ops.config_reference import END, START, reference_table
from ops.ttd import max_ttd_seconds, rows
from tests.components.settings.invalid_configs import INVALID_CONFIGS

README = (REPO_ROOT / "README.md").read_text()


def test_readme_config_table_is_current() -> None:
    embedded = README.split(START, 1)[1].split(END, 1)[0].strip()
    assert embedded == reference_table(), "run `make config-reference` and paste its output into README.md"


def test_ci_runs_the_readmes_test_command() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in README
    assert re.search(r"^make test$", ci, re.MULTILINE)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_links_in_readme_and_docs_point_at_files_and_headings_that_exist() -> None:
    checked = 0
    for document in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)\s:]+)\)", document.read_text()):
            path, _, anchor = target.partition("#")
            linked = document.parent / path if path else document
            assert linked.exists(), f"{document.name} links to missing {path}"
            if anchor:
                assert anchor in anchors(linked), f"{document.name} links to {target}: no such heading"
            checked += 1
    assert checked >= 20


def test_observability_doc_states_the_time_to_detect_the_tool_computes() -> None:
    text = (REPO_ROOT / "docs" / "observability.md").read_text()
    prod = load_settings(load_stack_config("prod"))
    assert f"max_ttd_s={max_ttd_seconds(prod)} in prod" in text
    assert f"prod detects every critical failure within {max_ttd_seconds(prod)} s" in README
    staging = load_settings(load_stack_config("staging"))
    assert f"its maximum is {max_ttd_seconds(staging)} s" in text
    stale = next(seconds for rule, seconds in rows(staging, include_warnings=True) if rule.key == "staging-data-stale")
    assert f"`staging-data-stale` (warning, {stale} s" in text
    for rule, seconds in rows(prod, include_warnings=True):
        name = rule.key if rule.severity == "critical" else f"{rule.key} (warning)"
        row = re.search(rf"^\| {re.escape(name)} \| (\d+) \|", text, re.MULTILINE)
        assert row is not None, f"docs/observability.md has no row for {name}"
        assert int(row.group(1)) == seconds, name


def test_the_dr_plan_states_the_backup_alerts_time_to_detect_from_the_tool() -> None:
    text = (REPO_ROOT / "docs" / "disaster-recovery.md").read_text()
    detection = next(line for line in text.splitlines() if line.startswith("| detection |"))
    ttd = {
        (rule.key, rule.severity): seconds
        for rule, seconds in rows(load_settings(load_stack_config("prod")), include_warnings=True)
    }
    assert f"a stale backup pages within {ttd['backup-stale', 'critical']} s" in detection
    assert f"a failed run warns within {ttd['backup-failed', 'warning']} s" in detection
    assert "< 5 min" not in text


def test_the_readme_counts_the_invalid_configs_the_tests_hold() -> None:
    assert f"and {len(INVALID_CONFIGS)} invalid configs that must each" in README.replace("\n", " ")


@pytest.mark.parametrize(
    ("document", "marker", "change"),
    [
        ("deploy.md", "A release on prod", "app.image=ghcr.io/audit-x/audit_x:1.5.0"),
        ("secret-rotation.md", "A PostgreSQL rotation on prod", "rotation.postgres-password=1"),
    ],
)
def test_the_preview_output_pasted_in_the_docs_is_the_tools(document: str, marker: str, change: str) -> None:
    text = (REPO_ROOT / "docs" / document).read_text()
    start = text.index("```", text.index(marker)) + 4
    pasted = text[start : text.index("```", start)].strip()
    assert pasted == preview_tool.render(preview_tool.preview("prod", [change]))


def layout_block() -> str:
    section = README.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_the_readmes_layout_names_every_folder_and_only_folders_that_exist() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    top = {path.split("/", 1)[0] + "/" for path in tracked if "/" in path}
    named = set(re.findall(r"^([.\w-]+/)", layout_block(), re.M))
    assert named == top
    # And the groups of components/, each a folder of its own.
    groups = {path.split("/")[1] + "/" for path in tracked if path.startswith("components/") and path.count("/") > 1}
    assert set(re.findall(r"^  ([\w]+/)", layout_block(), re.M)) == groups
