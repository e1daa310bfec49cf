"""`python -m ops status ENV`: an environment in one view, read from its Docker host.

- the release: the image of the stable web containers, and the canary's (label io.audit-x.track);
- every container of the environment: its state and health, a job's exit code;
- the backups: the age of the newest copy of each kind (`python -m runner status` in the backup
  runner) and of the newest pgBackRest backup and archived WAL (`python -m runner pitr-status`);
- the alerts firing, from Grafana's own alert API, asked from inside the Grafana container with the
  admin password the admin-password job keeps on Grafana's volume (the password never leaves it).

Exit status 0 when all is well, 1 when something needs a look (a container down or unhealthy, a
failed job, a stale backup, an alert firing), 2 for bad usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.lib.tokens import label
from components.observability.grafana import PASSWORD_FILE
from ops.docker_host import Container, HostError
from ops.environment import Environment

RUNNER = ("python", "-m", "runner")
# Grafana's Prometheus-compatible view of its own alert rules: every firing or pending alert.
ALERTS_PATH = "/api/prometheus/grafana/api/v1/alerts"
ALERTS_COMMAND = f'wget -q -O- "http://$GF_SECURITY_ADMIN_USER:$(cat {PASSWORD_FILE})@127.0.0.1:3000{ALERTS_PATH}"'


@dataclass
class Status:
    environment: str
    host: str
    release: str | None = None
    canary: str | None = None
    containers: list[Container] = field(default_factory=list)
    backups: dict[str, Any] = field(default_factory=dict)
    pitr: dict[str, Any] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "host": self.host,
            "release": self.release,
            "canary": self.canary,
            "containers": [
                {"name": c.name, "service": c.service, "role": c.role, "state": c.state, "health": c.health, "ok": c.ok}
                for c in self.containers
            ],
            "backups": self.backups,
            "pitr": self.pitr,
            "alerts": self.alerts,
            "problems": self.problems,
        }


def web_images(containers: list[Container], tags: Mapping[str, list[str]]) -> tuple[str | None, str | None]:
    """The stable and the canary image of the web role, by the tags of the image each runs (a
    container is created from an image id, which is what `docker inspect` shows of it)."""
    web = [c for c in containers if c.service == "app" and c.role == "web" and c.state == "running"]

    def named(image: str) -> str:
        return ", ".join(tags.get(image) or [image])

    stable = sorted({named(c.image) for c in web if c.labels.get(label("track")) != "canary"})
    canary = sorted({named(c.image) for c in web if c.labels.get(label("track")) == "canary"})
    return (", ".join(stable) or None, ", ".join(canary) or None)


def collect(environment: Environment, *, now: Callable[[], float] | None = None) -> Status:
    status = Status(environment.name, environment.host.host)
    status.containers = environment.containers()
    tags = environment.host.image_tags(sorted({c.image for c in status.containers if c.service == "app"}))
    status.release, status.canary = web_images(status.containers, tags)
    for container in status.containers:
        if not container.ok:
            job = container.lifecycle == "job"
            what = f"exited {container.exit_code}" if job else container.health or container.state
            status.problems.append(f"{container.name}: {what}")
    if not status.release:
        status.problems.append("no web container is running")
    running = {c.service: c.name for c in status.containers if c.state == "running"}
    if "backup" in running:
        _backups(environment, running["backup"], status, now or time.time)
    else:
        status.problems.append("the backup runner is not running: backups cannot be read")
    if "grafana" in running:
        _alerts(environment, running["grafana"], status)
    return status


def _backups(environment: Environment, runner: str, status: Status, now: Callable[[], float]) -> None:
    try:
        status.backups = environment.host.exec_json(runner, [*RUNNER, "status"])
    except (HostError, json.JSONDecodeError) as error:
        status.problems.append(f"backup status: {error}")
    limit = environment.settings.backup.max_age_hours
    for kind, newest in status.backups.items():
        age = newest.get("age_hours")
        if age is None or age > limit:
            status.problems.append(f"backup {kind}: newest is {'missing' if age is None else f'{age} h old'}")
    try:
        status.pitr = environment.host.exec_json(runner, [*RUNNER, "pitr-status"])
    except (HostError, json.JSONDecodeError) as error:
        status.problems.append(f"pitr status: {error}")
        return
    archiving: Mapping[str, Any] = status.pitr.get("archiving") or {}
    last = archiving.get("last_archived_at")
    status.pitr["wal_age_seconds"] = round(now() - float(last)) if last is not None else None
    if last is None:
        status.problems.append("pitr: no WAL segment has been archived")
    if archiving.get("failed_count") and (archiving.get("last_failed_at") or 0) > (last or 0):
        status.problems.append(f"pitr: archiving fails ({archiving.get('last_failed_wal')})")


def _alerts(environment: Environment, grafana: str, status: Status) -> None:
    try:
        answer = environment.host.exec_json(grafana, ["sh", "-c", ALERTS_COMMAND])
    except (HostError, json.JSONDecodeError) as error:
        status.problems.append(f"alerts could not be read from Grafana: {error}")
        return
    for alert in answer.get("data", {}).get("alerts", []):
        if alert.get("state") in ("firing", "alerting"):
            labels = alert.get("labels", {})
            status.alerts.append(f"{labels.get('alertname', '?')} ({labels.get('severity', '?')})")
    if status.alerts:
        status.problems.append(f"{len(status.alerts)} alert(s) firing")


def render(status: Status) -> str:
    lines = [
        f"{status.environment} on {status.host}",
        f"release  {status.release or '-'}" + (f"   canary {status.canary}" if status.canary else "   no canary"),
        "",
        f"{'CONTAINER':<48} {'SERVICE':<10} {'ROLE':<14} {'STATE':<10} HEALTH",
    ]
    for c in sorted(status.containers, key=lambda c: (c.lifecycle != "service", c.service, c.name)):
        lines.append(f"{c.name:<48} {c.service:<10} {c.role:<14} {c.state:<10} {c.health or '-'}")
    lines.append("")
    for kind, newest in status.backups.items():
        lines.append(f"backup {kind:<10} newest {newest.get('age_hours', '-')} h ago")
    if status.pitr:
        ages = status.pitr.get("age_hours", {})
        lines.append(
            f"pitr     full {ages.get('full', '-')} h, diff {ages.get('diff', '-')} h ago; "
            f"last WAL archived {status.pitr.get('wal_age_seconds', '-')} s ago"
        )
    lines.append(f"alerts   {', '.join(status.alerts) or 'none firing'}")
    lines.append("")
    lines.extend(f"PROBLEM  {problem}" for problem in status.problems)
    lines.append("all is well" if not status.problems else f"{len(status.problems)} problem(s)")
    return "\n".join(lines)
