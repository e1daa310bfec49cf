"""The signals alerts and the dashboard read: one Flux or LogQL query per signal, written once.

Every query is scoped to one environment and returns one series per thing that can fail (a
container, a probe URL, a consumer group, a backup kind), so an alert fires per instance and its
labels say which one. Nothing here contains `$`: Grafana expands `$NAME` in provisioning files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.lib.containers import LIFECYCLE_LABEL
from components.lib.tokens import LABEL_PREFIX
from components.observability.collector import PROBE_MEASUREMENT, REDPANDA_MEASUREMENT
from runner.metrics import MEASUREMENT as BACKUP_MEASUREMENT
from runner.metrics import PITR_MEASUREMENT, SEED_MEASUREMENT

INFLUXDB = "influxdb"
LOKI = "loki"
SERVICE_LABEL = f"{LABEL_PREFIX}.service"
ROLE_LABEL = f"{LABEL_PREFIX}.role"
BACKED_UP_KINDS = ("postgres", "influxdb")
# Staging's data never loaded: older than any threshold (stagingSeed's alert).
NEVER_LOADED_DAYS = 36500


@dataclass(frozen=True)
class Query:
    """A query and the language its datasource speaks (`influxdb`: Flux, `loki`: LogQL)."""

    datasource: str
    text: str
    window_seconds: int  # how far back it reads: the rule's relative time range


SORT_BY_TIME = 'sort(columns: ["_time"])'


def in_time_order(steps: Sequence[str]) -> list[str]:
    """`steps` with a sort by time before every `last()` that lacks one: InfluxDB keeps no row
    order after `group()`, so an unsorted `last()` can return an older row than the latest."""
    ordered: list[str] = []
    for step in steps:
        if step == "last()" and (not ordered or ordered[-1] != SORT_BY_TIME):
            ordered.append(SORT_BY_TIME)
        ordered.append(step)
    return ordered


@dataclass(frozen=True)
class Scope:
    """Where the queries look: the environment's bucket and its name."""

    environment: str
    bucket: str

    def flux(self, window_seconds: int, *filters: str, then: Sequence[str]) -> Query:
        """`from |> range |> filter...` then each step of `then`, piped in order."""
        lines = [
            f'from(bucket: "{self.bucket}")',
            f"  |> range(start: -{window_seconds}s)",
            *[f"  |> filter(fn: (r) => {condition})" for condition in filters],
            *[f"  |> {step}" for step in in_time_order(then)],
        ]
        return Query(INFLUXDB, "\n".join(lines), window_seconds)

    def services(self) -> str:
        """This environment's long-running containers (not its one-shot jobs)."""
        return f'r["{LABEL_PREFIX}.environment"] == "{self.environment}" and r["{LIFECYCLE_LABEL}"] == "service"'

    def per_container(
        self, window_seconds: int, measurement: str, field: str, *steps: str, where: str | None = None
    ) -> Query:
        """One series per long-running container of this environment: `field` of `measurement`
        (rows matching `where`), then `steps`."""
        return self.flux(
            window_seconds,
            f'r._measurement == "{measurement}" and r._field == "{field}"' + (f" and {where}" if where else ""),
            self.services(),
            then=('group(columns: ["container_name"])', *steps),
        )

    # --- the collector ------------------------------------------------------------------------

    def collector_heartbeat(self, window_seconds: int) -> Query:
        """Containers the Docker input saw: no data at all means the collector is silent."""
        return self.flux(
            window_seconds,
            'r._measurement == "docker" and r._field == "n_containers"',
            f'r.environment == "{self.environment}"',
            then=("last()",),
        )

    def containers_not_running(self, window_seconds: int) -> Query:
        """1 per service container whose latest state is anything but running."""
        return self.per_container(
            window_seconds,
            "docker_container_status",
            "restart_count",
            'sort(columns: ["_time"])',
            "last()",
            'map(fn: (r) => ({r with _value: if r.container_status == "running" then 0.0 else 1.0}))',
        )

    def containers_unhealthy(self, window_seconds: int) -> Query:
        """1 per service container whose Docker health check reports unhealthy."""
        return self.per_container(
            window_seconds,
            "docker_container_health",
            "health_status",
            "last()",
            'map(fn: (r) => ({r with _value: if r._value == "unhealthy" then 1.0 else 0.0}))',
        )

    def container_restarts(self, window_seconds: int) -> Query:
        """Restarts per container in the window; a re-created container (count back to 0) adds none."""
        return self.per_container(
            window_seconds,
            "docker_container_status",
            "restart_count",
            'sort(columns: ["_time"])',
            "difference(nonNegative: true)",
            "sum()",
            "toFloat()",
        )

    def container_cpu_percent(self, window_seconds: int) -> Query:
        """Mean CPU per container over the window, in percent of one core."""
        return self.per_container(
            window_seconds, "docker_container_cpu", "usage_percent", "mean()", where='r.cpu == "cpu-total"'
        )

    def container_memory_percent(self, window_seconds: int) -> Query:
        """Latest memory use per container, in percent of its limit."""
        return self.per_container(
            window_seconds,
            "docker_container_mem",
            "usage_percent",
            "last()",
        )

    def disk_used_percent(self, window_seconds: int) -> Query:
        """Use of the filesystem Docker's volumes live on (components/observability/collector.py says why `/`)."""
        return self.flux(
            window_seconds,
            'r._measurement == "disk" and r._field == "used_percent" and r.path == "/"',
            f'r.environment == "{self.environment}"',
            then=("last()",),
        )

    def probe_failure_percent(self, window_seconds: int) -> Query:
        """Percent of `/health` probes per web slot that got a 5xx or no answer at all."""
        return self.flux(
            window_seconds,
            f'r._measurement == "{PROBE_MEASUREMENT}" and r.probe == "health"',
            f'r.environment == "{self.environment}"',
            'r._field == "result_code" or r._field == "http_response_code"',
            then=(
                'group(columns: ["server"])',
                'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
                # No answer (result_code != 0) or a 5xx: a failed probe, counted as 100 %.
                "map(fn: (r) => ({r with _value:"
                " if r.result_code != 0 or (exists r.http_response_code and r.http_response_code >= 500)"
                " then 100.0 else 0.0}))",
                "mean()",
            ),
        )

    def probe_latency_seconds(self, window_seconds: int) -> Query:
        return self.flux(
            window_seconds,
            f'r._measurement == "{PROBE_MEASUREMENT}" and r._field == "response_time"',
            f'r.environment == "{self.environment}"',
            then=(
                'group(columns: ["server"])',
                "aggregateWindow(every: 1m, fn: max, createEmpty: false)",
            ),
        )

    def consumer_lag(self, window_seconds: int) -> Query:
        """The largest partition lag of each consumer group."""
        return self.flux(
            window_seconds,
            f'r._measurement == "{REDPANDA_MEASUREMENT}" and r._field == "redpanda_kafka_consumer_group_lag_max"',
            f'r.environment == "{self.environment}"',
            then=(
                'group(columns: ["redpanda_group"])',
                "last()",
            ),
        )

    # --- the backup runner --------------------------------------------------------------------

    def backup_age_hours(self, window_seconds: int) -> Query:
        """Hours since the last successful backup of each kind; none in the window means no data."""
        return self._since_last_success(window_seconds, BACKED_UP_KINDS, per_kind_unit={})

    def pitr_backup_age_ratio(self, window_seconds: int, limit_hours: dict[str, float]) -> Query:
        """Each pgBackRest backup kind's hours since its last success, over that kind's limit:
        above 1 is stale. None in the window means no data."""
        return self._since_last_success(window_seconds, tuple(limit_hours), per_kind_unit=limit_hours)

    def _since_last_success(
        self, window_seconds: int, kinds: Sequence[str], *, per_kind_unit: dict[str, float]
    ) -> Query:
        """Per kind, the time since its last successful run: in hours, or in units of hours given per kind."""
        selected = " or ".join(f'r.kind == "{kind}"' for kind in kinds)
        hours = "float(v: int(v: now()) - int(v: r._time)) / 3600000000000.0"
        if per_kind_unit:
            units = " else ".join(f'if r.kind == "{kind}" then {unit:.1f}' for kind, unit in per_kind_unit.items())
            hours = f"{hours} / ({units} else 1.0)"
        return self.flux(
            window_seconds,
            f'r._measurement == "{BACKUP_MEASUREMENT}" and r._field == "success" and r._value == 1',
            f'r.environment == "{self.environment}" and ({selected})',
            then=('group(columns: ["kind"])', "last()", f"map(fn: (r) => ({{r with _value: {hours}}}))"),
        )

    def backup_last_failed(
        self, window_seconds: int, *, kinds: Sequence[str] = (), excluding: Sequence[str] = ()
    ) -> Query:
        """1 per kind whose latest run failed: of `kinds` (default every kind), but `excluding`."""
        selected = [f'r.kind == "{kind}"' for kind in kinds] or ["true"]
        excluded = [f'r.kind != "{kind}"' for kind in excluding]
        return self.flux(
            window_seconds,
            f'r._measurement == "{BACKUP_MEASUREMENT}" and r._field == "success"',
            f'r.environment == "{self.environment}" and ({" or ".join(selected)})'
            + "".join(f" and {condition}" for condition in excluded),
            then=(
                'group(columns: ["kind"])',
                'sort(columns: ["_time"])',
                "last()",
                "map(fn: (r) => ({r with _value: if r._value == 0 then 1.0 else 0.0}))",
            ),
        )

    def staging_data_age_days(self, window_seconds: int) -> Query:
        """Days since prod made the seed staging runs on (runner/staging_seed.py); never loaded
        counts as older than any threshold (the runner writes -1 then)."""
        return self.flux(
            window_seconds,
            f'r._measurement == "{SEED_MEASUREMENT}" and r._field == "seed_age_s"',
            f'r.environment == "{self.environment}" and r.role == "running"',
            then=(
                'group(columns: ["environment"])',
                'sort(columns: ["_time"])',
                "last()",
                f"map(fn: (r) => ({{r with _value: if r._value < 0.0 then {NEVER_LOADED_DAYS:.1f} "
                "else r._value / 86400.0}))",
            ),
        )

    def archiving_stuck(self, window_seconds: int, max_age_seconds: int) -> Query:
        """1 while WAL archiving fails (no success since the last failure), or while complete
        segments wait and none was archived for `max_age_seconds`; 0 otherwise. An idle
        database has no segment waiting, so it never looks stuck."""
        fields = ("failing", "segments_waiting", "last_archived_age_s")
        return self.flux(
            window_seconds,
            f'r._measurement == "{PITR_MEASUREMENT}" and ('
            + " or ".join(f'r._field == "{field}"' for field in fields)
            + ")",
            f'r.environment == "{self.environment}"',
            then=(
                'group(columns: ["environment"])',
                'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
                'sort(columns: ["_time"])',
                'last(column: "failing")',
                "map(fn: (r) => ({r with _value: if r.failing == 1 or "
                f"(r.segments_waiting > 0 and r.last_archived_age_s > {max_age_seconds}.0) then 1.0 else 0.0}}))",
            ),
        )

    # --- the logs ----------------------------------------------------------------------------

    def error_logs_per_minute(self) -> Query:
        """ERROR (and worse) lines per minute of each app role, from Loki's labels."""
        selector = f'{{environment="{self.environment}", service="app", level=~"(?i)error|fatal|critical"}}'
        return Query(LOKI, f"sum by (role) (count_over_time({selector}[1m]))", 60)
