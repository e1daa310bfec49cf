"""Worst-case time to detect of each critical alert, computed from a stack's config.

    python -m ops.ttd STACK [--all]

For every critical rule the program declares (components/observability/alerting.py), adds up the delays
between a failure and the first notification, each at its worst: the collector's collection
and flush intervals (or the source's own, such as Redpanda's lag refresh or Docker's health
check retries), any window the query averages over, Grafana's evaluation interval, the rule's
pending period and the notification group wait. Then the checks from outside the host
(components/observability/watcher.py), a line each, `external <name> ttd_s=N`: Route 53's probe
interval x threshold, CloudWatch's metric delay, the alarm's periods, the notification; they
count in max_ttd_s. Prints a table and ends with `max_ttd_s=N`.
`--all` lists warning rules too (they do not count towards max_ttd_s: warnings wait longer on
purpose).
"""

from __future__ import annotations

import argparse

from components.observability.alerting import AlertRule, alert_rules
from components.observability.watcher import time_to_detect
from components.settings import ConfigError, Settings, load_settings
from harness.mock_engine import load_stack_config, stack_names


def rows(settings: Settings, *, include_warnings: bool = False) -> list[tuple[AlertRule, int]]:
    """(rule, worst-case seconds to detect), slowest first."""
    selected = [r for r in alert_rules(settings) if include_warnings or r.severity == "critical"]
    measured = [(rule, rule.time_to_detect(settings.alerting)) for rule in selected]
    return sorted(measured, key=lambda item: (-item[1], item[0].key))


def table(settings: Settings, *, include_warnings: bool = False) -> str:
    lines = [f"{'rule':<34} {'severity':<9} {'ttd_s':>6}  stages (seconds)"]
    for rule, seconds in rows(settings, include_warnings=include_warnings):
        stages = " + ".join(f"{s.name} {s.seconds}" for s in rule.detection_stages(settings.alerting))
        lines.append(f"{rule.key:<34} {rule.severity:<9} {seconds:>6}  {stages}")
    return "\n".join(lines)


def external_rows(settings: Settings) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """(check, worst-case seconds, stages) of the checks from outside the host, slowest first."""
    checks = time_to_detect(settings.watcher, settings.monitoring.flush_interval_seconds)
    measured = [(name, sum(seconds for _, seconds in stages), stages) for name, stages in checks.items()]
    return sorted(measured, key=lambda item: (-item[1], item[0]))


def external_lines(settings: Settings) -> list[str]:
    return [
        f"external {name} ttd_s={seconds}  ({' + '.join(f'{stage} {s}' for stage, s in stages)})"
        for name, seconds, stages in external_rows(settings)
    ]


def max_ttd_seconds(settings: Settings) -> int:
    return max([seconds for _, seconds in rows(settings)] + [seconds for _, seconds, _ in external_rows(settings)])


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ops.ttd", description="Worst-case time to detect of each critical alert of a stack."
    )
    parser.add_argument("stack", choices=stack_names())
    parser.add_argument("--all", action="store_true", help="list warning rules too")
    args = parser.parse_args()
    try:
        settings = load_settings(load_stack_config(args.stack))
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    print(table(settings, include_warnings=args.all))
    print("\n".join(external_lines(settings)))
    print(f"max_ttd_s={max_ttd_seconds(settings)}")


if __name__ == "__main__":
    main()
