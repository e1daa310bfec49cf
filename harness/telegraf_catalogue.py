"""What Telegraf's inputs emit (measurements, their fields and tags), read from Telegraf's own
source at the version the collector pins, and what the collector's config makes of it.

    python -m harness.telegraf_catalogue --repo PATH-TO-A-TELEGRAF-CLONE > harness/telegraf_catalogue.json

The catalogue is the union of three readings of each input plugin at the tag: its README's
"Metrics" section, the line protocol of its "Example Output", and its Go code (the maps handed to
`acc.AddFields` / `AddGauge`, and every `tags[...]` it sets). No one of them is complete: the
docker README leaves out `restart_count`, which only the code has. The JSON is checked in
(CI has no network); `tests/components/observability/test_alerting.py` fails when the collector image moves
to a Telegraf the catalogue was not made from.

`emitted(config, catalogue, labels)` applies the collector's config: which inputs run,
`name_override`, `fieldinclude`, `tagexclude`, per-input `tags`, global tags, and the Docker
labels `docker_label_include` turns into tags.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

# The inputs the collector configures (components/observability/collector.py). `prometheus`
# emits whatever its target exposes; its fields are bounded by the config alone.
PLUGINS = ("docker", "http_response", "disk", "internal")
CATALOGUE = Path(__file__).with_name("telegraf_catalogue.json")

Metrics = dict[str, dict[str, set[str]]]


def _new() -> Metrics:
    return defaultdict(lambda: {"tags": set(), "fields": set()})


def _name(item: str) -> str:
    return item.strip().strip("`").split()[0].strip("`").rstrip(":") if item.strip() else ""


def from_readme(text: str) -> Metrics:
    """The README's "## Metrics" bullets: `- measurement`, then `- tags:` / `- fields:` lists (or
    a bare list of fields), and the line protocol under "## Example Output"."""
    found = _new()
    section = re.search(r"^## Metrics\n(.*?)(?=^## )", text, re.M | re.S)
    measurement, kind = None, "fields"
    for line in (section.group(1) if section else "").splitlines():
        bullet = re.match(r"^( *)- (.+)$", line)
        if not bullet:
            continue
        indent, item = len(bullet.group(1)), bullet.group(2)
        if indent == 0:
            measurement, kind = _name(item), "fields"
            if re.fullmatch(r"[a-z][a-z0-9_]*", measurement or ""):
                found[measurement]
            else:
                measurement = None
        elif measurement and item.strip() in ("tags:", "fields:"):
            kind = item.strip().rstrip(":")
        elif measurement and re.fullmatch(r"[a-z][a-z0-9_]*", _name(item)):
            found[measurement][kind].add(_name(item))
    example = re.search(r"^## Example Output\n+```[a-z]*\n(.*?)```", text, re.M | re.S)
    for line in (example.group(1) if example else "").splitlines():
        _line_protocol(line, found)
    return found


def _line_protocol(line: str, found: Metrics) -> None:
    """`measurement,tag=v,... field=v,... [time]`; string field values are quoted."""
    parts = re.match(r'^([a-z][a-z0-9_]*)((?:,[^ ,=]+=[^ ,]*)*) ((?:"(?:[^"\\]|\\.)*"|[^ "])+)', line)
    if not parts:
        return
    measurement, tags, fields = parts.groups()
    found[measurement]["tags"].update(t.split("=", 1)[0] for t in tags.split(",") if t)
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', fields)
    found[measurement]["fields"].update(f.split("=", 1)[0] for f in unquoted.split(","))


def from_go(text: str) -> Metrics:
    """The fields of each map handed to `acc.AddFields("measurement", map, ...)` (or AddGauge),
    wherever in the file that map's keys are set, and every tag key the file sets."""
    found = _new()
    tags = set(re.findall(r'\btags\["([a-z_]+)"\]\s*=', text))
    for literal in re.findall(r"\btags\s*:?=\s*map\[string\]string\{([^}]*)\}", text):
        tags.update(re.findall(r'"([a-z_]+)"\s*:', literal))
    for measurement, variable in re.findall(r'acc\.Add(?:Fields|Gauge|Counter)\(\s*"([a-z_]+)",\s*(\w+)', text):
        keys = set(re.findall(rf'\b{variable}\["([a-z_]+)"\]\s*=', text))
        for literal in re.findall(rf"\b{variable}\s*:?=\s*map\[string\]interface\{{\}}\{{(.*?)\n\s*\}}", text, re.S):
            keys.update(re.findall(r'^\s*"([a-z_]+)"\s*:', literal, re.M))
        found[measurement]["fields"].update(keys)
        found[measurement]["tags"].update(tags)
    return found


def read_plugin(repo: Path, tag: str, plugin: str) -> Metrics:
    def show(path: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "show", f"{tag}:{path}"], capture_output=True, text=True, check=True
        ).stdout

    directory = f"plugins/inputs/{plugin}"
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", f"{tag}:{directory}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    merged = _new()
    readings = [from_readme(show(f"{directory}/README.md"))]
    readings += [
        from_go(show(f"{directory}/{name}")) for name in listing if name.endswith(".go") and "_test" not in name
    ]
    for reading in readings:
        for measurement, parts in reading.items():
            for kind in ("tags", "fields"):
                merged[measurement][kind] |= parts[kind]
    return merged


def build(repo: Path, tag: str) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"{tag}^{{commit}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    inputs = {
        plugin: {
            measurement: {kind: sorted(parts[kind]) for kind in ("tags", "fields")}
            for measurement, parts in sorted(read_plugin(repo, tag, plugin).items())
        }
        for plugin in PLUGINS
    }
    return {"telegraf": tag.removeprefix("v"), "commit": commit, "inputs": inputs}


def load() -> dict[str, Any]:
    return json.loads(CATALOGUE.read_text())


def emitted(config: dict[str, Any], catalogue: dict[str, Any], labels: set[str]) -> dict[str, dict[str, set[str]]]:
    """Measurement -> {"tags", "fields"} the collector writes, given its parsed TOML config and
    the Docker labels its containers carry. A field or tag given as a glob (`fieldinclude` of an
    input whose fields are its target's) is kept as the glob."""
    result: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"tags": set(), "fields": set()})
    global_tags = set((config.get("global_tags") or {}).keys())
    for plugin, instances in (config.get("inputs") or {}).items():
        for instance in instances:
            known = catalogue["inputs"].get(plugin)
            # An input without a catalogue (prometheus) emits its target's names: the config's globs.
            measurements = known if known is not None else {plugin: {"tags": ["*"], "fields": ["*"]}}
            include = instance.get("fieldinclude")
            extra_tags = set((instance.get("tags") or {}).keys()) | global_tags
            if plugin == "docker":
                extra_tags |= {
                    label
                    for label in labels
                    if any(fnmatch.fnmatchcase(label, glob) for glob in instance.get("docker_label_include", []))
                }
            for measurement, parts in measurements.items():
                name = instance.get("name_override", measurement)
                fields = set(parts["fields"])
                if include:
                    fields = (
                        {f for f in fields if any(fnmatch.fnmatchcase(f, glob) for glob in include)}
                        if "*" not in fields
                        else set(include)
                    )
                if not fields:
                    continue  # every field filtered out: Telegraf drops the metric
                tags = (set(parts["tags"]) | extra_tags) - set(instance.get("tagexclude", []))
                result[name]["fields"] |= fields
                result[name]["tags"] |= tags
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.telegraf_catalogue",
        description="Catalogue what Telegraf's inputs emit, from its source.",
    )
    parser.add_argument("--repo", type=Path, required=True, help="a clone of github.com/influxdata/telegraf")
    parser.add_argument("--tag", help="default: the collector image's version, as vX.Y.Z")
    args = parser.parse_args(argv)
    from components.settings.observability import MonitoringSettings  # noqa: PLC0415

    image = MonitoringSettings.model_fields["collector_image"].default
    tag = args.tag or "v" + str(image).split(":", 1)[1].split("-", 1)[0]
    json.dump(build(args.repo, tag), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
