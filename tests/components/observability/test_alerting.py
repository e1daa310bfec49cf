"""Grafana's provisioning, as rendered: every file parses and is what Grafana requires; every rule
is well formed, runs a query Flux's own checker accepts, links its runbook and handles no data;
every route reaches a receiver that exists; channels appear only when configured; and no secret
is written into any file."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest
import yaml

from components.lib.durations import parse_seconds
from components.observability.alerting import alert_rules, alerting_file
from components.observability.dashboard import dashboard
from components.observability.logs import LABELS
from components.settings import load_settings
from harness import telegraf_catalogue
from harness.mock_engine import REPO_ROOT, Plan, fake_secret, load_stack_config, run_program
from tests.helpers import (
    container,
    containers,
    env,
    flux_valid,
    settings_of,
    unknown_references,
    uploaded,
    written_metrics,
)

ALERTING = "/etc/grafana/provisioning/alerting/audit-x.yaml"
DATASOURCES = "/etc/grafana/provisioning/datasources/audit-x.yaml"
DASHBOARD_PROVIDER = "/etc/grafana/provisioning/dashboards/audit-x.yaml"
DASHBOARD = "/etc/grafana/dashboards/platform.json"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"

SLACK = "https://hooks.slack.com/services/T0000/B0000/slackwebhooksecretvalue"
PAGERDUTY = "pagerdutyroutingkeysecret0000000"
SMTP_PASSWORD = "smtp-password-secret-value"
ALL_CHANNELS = {
    "audit-x:slackWebhookUrl": SLACK,
    "audit-x:pagerdutyRoutingKey": PAGERDUTY,
    "audit-x:smtpPassword": SMTP_PASSWORD,
}


def grafana_file(plan: Plan, path: str) -> Any:
    text = uploaded(container(plan, "grafana"), path)
    return json.loads(text) if path.endswith(".json") else yaml.safe_load(text)


def rules_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"]]


def runbook_anchors() -> set[str]:
    return {line[3:].strip() for line in RUNBOOKS.read_text().splitlines() if line.startswith("## ")}


# --- the alerting file ------------------------------------------------------------------------


def test_every_rule_is_well_formed(plan: Plan, stack: str) -> None:
    settings = settings_of(stack)
    document = grafana_file(plan, ALERTING)
    assert document["apiVersion"] == 1
    datasource_uids = {ds["uid"] for ds in grafana_file(plan, DATASOURCES)["datasources"]} | {"__expr__"}
    uids = []
    for group in document["groups"]:
        assert parse_seconds(group["interval"]) == settings.alerting.evaluation_interval_seconds
        assert group["folder"] == "audit-x"
        for rule in group["rules"]:
            uids.append(rule["uid"])
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", rule["uid"]), rule["uid"]
            assert rule["title"] and rule["data"], rule["uid"]
            ref_ids = [query["refId"] for query in rule["data"]]
            assert len(set(ref_ids)) == len(ref_ids), rule["uid"]
            assert rule["condition"] in ref_ids, rule["uid"]
            for query in rule["data"]:
                assert query["datasourceUid"] in datasource_uids, rule["uid"]
                assert query["model"]["refId"] == query["refId"]
                if query["datasourceUid"] == "__expr__":
                    assert query["model"]["expression"] in ref_ids, rule["uid"]
                else:
                    assert query["relativeTimeRange"]["from"] > 0
                    # Scoped to this environment, whatever else shares the datasource.
                    text = query["model"].get("query") or query["model"]["expr"]
                    assert re.search(rf'environment"?\]? ?=+ ?"{stack}"', text), rule["uid"]
            severity = rule["labels"]["severity"]
            assert severity in ("warning", "critical")
            assert group["name"] == f"{stack}-{severity}"
            pending = {
                "critical": settings.alerting.critical_pending_seconds,
                "warning": settings.alerting.warning_pending_seconds,
            }[severity]
            assert parse_seconds(rule["for"]) == pending
            assert rule["noDataState"] in ("Alerting", "NoData", "OK")
            assert rule["execErrState"] == "Alerting"
            assert rule["annotations"]["summary"]
            assert rule["labels"]["environment"] == stack
    assert len(set(uids)) == len(uids)
    assert len(uids) == len(alert_rules(settings))
    # Grafana refuses two rules of the same title in one folder.
    titles = [rule["title"] for rule in rules_of(document)]
    assert len(set(titles)) == len(titles)


def test_every_rule_links_a_runbook_section_that_exists(plan: Plan, stack: str) -> None:
    base = settings_of(stack).alerting.runbook_base_url
    anchors = runbook_anchors()
    for rule in rules_of(grafana_file(plan, ALERTING)):
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == base
        assert base.endswith("/docs/runbooks.md")
        assert anchor in anchors, f"{rule['uid']}: docs/runbooks.md has no section '## {anchor}'"


def test_collector_fed_rules_alert_on_no_data(plan: Plan) -> None:
    """A silent collector must not look healthy: every rule on its series alerts when they stop."""
    # Series that exist whenever the collector runs; consumer lag exists only for groups with
    # committed offsets, backups only once a day.
    always_there = re.compile(r'_measurement == "(docker\w*|disk|http_response)"')
    checked = 0
    for rule in rules_of(grafana_file(plan, ALERTING)):
        query = rule["data"][0]
        if query["datasourceUid"] == "audit-x-influxdb" and always_there.search(query["model"]["query"]):
            assert rule["noDataState"] == "Alerting", rule["uid"]
            checked += 1
    assert checked >= 12
    by_key = {rule["uid"].split("-", 1)[1]: rule for rule in rules_of(grafana_file(plan, ALERTING))}
    assert by_key["collector-silent-critical"]["noDataState"] == "Alerting"
    assert by_key["backup-stale-critical"]["noDataState"] == "Alerting"
    # Absence is the healthy state there; the rules above cover the silence.
    assert by_key["app-error-logs-critical"]["noDataState"] == "OK"
    assert by_key["backup-failed-warning"]["noDataState"] == "OK"
    assert by_key["consumer-lag-critical"]["noDataState"] == "OK"


def test_thresholds_come_from_config(stack: str) -> None:
    config = load_stack_config(stack)
    alerting = json.loads(config["audit-x:alerting"])
    alerting["thresholds"] = {"consumerLag": {"warning": 123, "critical": 4567}}
    settings = load_settings({**config, "audit-x:alerting": json.dumps(alerting)})
    document = yaml.safe_load(alerting_file(settings))
    thresholds = {
        rule["uid"]: rule["data"][2]["model"]["conditions"][0]["evaluator"]["params"][0] for rule in rules_of(document)
    }
    assert thresholds[f"{stack}-consumer-lag-warning"] == 123
    assert thresholds[f"{stack}-consumer-lag-critical"] == 4567
    assert thresholds[f"{stack}-backup-stale-critical"] == settings.backup.max_age_hours
    assert thresholds[f"{stack}-disk-filling-critical"] == settings.alerting.thresholds.disk_percent.critical


def test_the_issues_alerts_are_all_there(plan: Plan, stack: str) -> None:
    keys = {(rule["uid"].removeprefix(f"{stack}-")) for rule in rules_of(grafana_file(plan, ALERTING))}
    for tiered in ("consumer-lag", "web-probes-failing", "app-error-logs", "container-cpu", "container-memory",
                   "container-restarts", "disk-filling"):  # fmt: skip
        assert {f"{tiered}-warning", f"{tiered}-critical"} <= keys
    assert {"container-unhealthy-critical", "container-not-running-critical", "backup-stale-critical",
            "backup-failed-warning", "collector-silent-critical"} <= keys  # fmt: skip


# --- the queries ----------------------------------------------------------------------------


def test_every_flux_query_passes_fluxs_own_checker(plans: dict[str, Plan]) -> None:
    scripts = []
    for plan in plans.values():
        scripts += [
            query["model"]["query"]
            for rule in rules_of(grafana_file(plan, ALERTING))
            for query in rule["data"]
            if query["datasourceUid"] == "audit-x-influxdb"
        ]
        scripts += [
            target["query"]
            for panel in grafana_file(plan, DASHBOARD)["panels"]
            for target in panel["targets"]
            if panel["datasource"]["uid"] == "audit-x-influxdb"
        ]
    # The checker can say no: an unknown function and a type error are refused.
    broken = [
        'from(bucket: "metrics") |> range(start: -1m) |> lastt()',
        'from(bucket: "metrics") |> range(start: -1m) |> map(fn: (r) => ({r with _value: r._value + "x" * 2}))',
    ]
    verdicts = flux_valid(scripts + broken)
    assert verdicts[-2:] == [False, False]
    invalid = [script for script, ok in zip(scripts, verdicts, strict=False) if not ok]
    assert not invalid, invalid[0]
    assert len(scripts) > 20


def flux_queries(plan: Plan) -> dict[str, str]:
    """Every Flux query Grafana runs: the alert rules' and the dashboard panels'."""
    queries = {
        rule["uid"]: rule["data"][0]["model"]["query"]
        for rule in rules_of(grafana_file(plan, ALERTING))
        if rule["data"][0]["model"].get("query") and "_measurement" in rule["data"][0]["model"]["query"]
    }
    for panel in grafana_file(plan, DASHBOARD)["panels"]:
        for index, target in enumerate(panel.get("targets", [])):
            if "_measurement" in str(target.get("query", "")):
                queries[f"panel {panel['title']} #{index}"] = target["query"]
    return queries


def test_queries_read_only_measurements_fields_and_tags_that_are_written(plan: Plan, stack: str) -> None:
    written = written_metrics(plan, stack)
    queries = flux_queries(plan)
    assert len(queries) > 20
    problems = {name: found for name, query in queries.items() if (found := unknown_references(query, written))}
    assert problems == {}


def test_the_heartbeat_sent_to_cloudwatch_is_a_metric_telegraf_emits(plan: Plan) -> None:
    """The external watcher alarms on `internal_agent_metrics_gathered`: a field the `internal`
    input really emits, passed by the CloudWatch output's filters."""
    config = tomllib.loads(uploaded(container(plan, "collector"), "/etc/telegraf/telegraf.conf"))
    written = telegraf_catalogue.emitted(config, telegraf_catalogue.load(), set())
    cloudwatch = config["outputs"]["cloudwatch"][0]
    (measurement,) = cloudwatch["namepass"]
    (field,) = cloudwatch["fieldinclude"]
    assert field in written[measurement]["fields"]
    assert set(written) - {measurement} and measurement == "internal_agent"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (('r._field == "restart_count"', 'r._field == "restarts"'), "field restarts"),
        (('r._measurement == "disk"', 'r._measurement == "disks"'), "measurement disks"),
        (('r.path == "/"', 'r.mountpoint == "/"'), "column mountpoint"),
        (('group(columns: ["container_name"])', 'group(columns: ["container"])'), "column container"),
    ],
)
def test_a_query_reading_what_nothing_writes_is_caught(
    plan: Plan, stack: str, edit: tuple[str, str], problem: str
) -> None:
    written = written_metrics(plan, stack)
    query = next(q for q in flux_queries(plan).values() if edit[0] in q)
    assert unknown_references(query, written) == []
    assert problem in unknown_references(query.replace(edit[0], edit[1]), written)


def test_loki_queries_use_only_the_labels_alloy_sets(plan: Plan, stack: str) -> None:
    expressions = [
        query["model"]["expr"]
        for rule in rules_of(grafana_file(plan, ALERTING))
        for query in rule["data"]
        if query["datasourceUid"] == "audit-x-loki"
    ]
    assert expressions
    for expression in expressions:
        selector = re.search(r"\{([^}]*)\}", expression)
        assert selector is not None
        names = set(re.findall(r"(\w+)\s*=~?", selector.group(1)))
        assert names <= {*LABELS, "level", "stream"}, names
        assert f'environment="{stack}"' in expression
        assert "request_id" not in expression
        assert expression.count("(") == expression.count(")")


# --- channels and routing -------------------------------------------------------------------


def channels(document: dict[str, Any]) -> dict[str, list[str]]:
    return {point["name"]: [r["type"] for r in point["receivers"]] for point in document["contactPoints"]}


def assert_routes_reach_receivers(document: dict[str, Any]) -> None:
    names = {point["name"] for point in document["contactPoints"]}
    (root,) = document["policies"]
    assert root["receiver"] in names
    for route in root["routes"]:
        assert route["receiver"] in names
        for label, operator, value in route["object_matchers"]:
            assert (label, operator) == ("severity", "=")
            assert value in ("warning", "critical")
    for point in document["contactPoints"]:
        assert point["receivers"], f"{point['name']} has no integration"
        assert len({r["uid"] for r in point["receivers"]}) == len(point["receivers"])


@pytest.mark.parametrize(
    ("secrets", "critical", "warning"),
    [
        ({}, ["email"], ["email"]),
        ({"audit-x:slackWebhookUrl": SLACK}, ["slack"], ["slack", "email"]),
        ({"audit-x:pagerdutyRoutingKey": PAGERDUTY}, ["pagerduty"], ["email"]),
        (ALL_CHANNELS, ["pagerduty", "slack"], ["slack", "email"]),
    ],
    ids=["email-only", "slack", "pagerduty", "all"],
)
def test_channels_are_there_only_when_configured(
    stack: str, secrets: dict[str, str], critical: list[str], warning: list[str]
) -> None:
    document = yaml.safe_load(alerting_file(settings_of(stack, secrets)))
    assert channels(document) == {f"{stack}-critical": critical, f"{stack}-warning": warning}
    assert_routes_reach_receivers(document)
    (root,) = document["policies"]
    routes = {route["object_matchers"][0][2]: route["receiver"] for route in root["routes"]}
    assert routes == {"critical": f"{stack}-critical", "warning": f"{stack}-warning"}


def test_slack_alone_is_enough_without_email(stack: str) -> None:
    config = {**load_stack_config(stack), "audit-x:slackWebhookUrl": SLACK}
    config["audit-x:alerting"] = json.dumps({"emailTo": []})
    settings = load_settings(config, frozenset({"audit-x:slackWebhookUrl"}))
    document = yaml.safe_load(alerting_file(settings))
    assert channels(document) == {f"{stack}-critical": ["slack"], f"{stack}-warning": ["slack"]}


@pytest.fixture(scope="module")
def prod_with_every_channel() -> Plan:
    return run_program("prod", secrets=ALL_CHANNELS)


def test_grafana_gets_channel_secrets_as_files_only(prod_with_every_channel: Plan, plan: Plan) -> None:
    grafana = container(prod_with_every_channel, "grafana")
    variables = env(grafana, plain=True)
    assert variables["GF_SMTP_HOST"] == "smtp.audit-x.example.com:587"
    assert variables["GF_SMTP_PASSWORD__FILE"] == "/run/secrets/smtp-password"
    for secret in (SLACK, PAGERDUTY, SMTP_PASSWORD):
        assert not any(secret in value for value in variables.values())
    files = {u["file"]: u for u in grafana.plain_inputs["uploads"]}
    assert files["/run/secrets/slack-webhook-url"]["content"] == SLACK
    assert files["/run/secrets/pagerduty-routing-key"]["content"] == PAGERDUTY
    assert files["/run/secrets/smtp-password"]["content"] == SMTP_PASSWORD
    for path in ("/run/secrets/slack-webhook-url", "/run/secrets/pagerduty-routing-key", "/run/secrets/smtp-password"):
        assert (files[path]["permissions"], files[path]["owner"]) == ("0400", "472"), path
    # Without the secrets (the stack files alone), there are no such files.
    assert not any("slack" in u["file"] for u in container(plan, "grafana").inputs["uploads"])


def test_every_file_a_provisioning_file_names_is_uploaded_to_grafana(prod_with_every_channel: Plan) -> None:
    grafana = container(prod_with_every_channel, "grafana")
    uploads = {u["file"] for u in grafana.inputs["uploads"]}
    referenced = 0
    for path in (ALERTING, DATASOURCES, DASHBOARD_PROVIDER):
        text = uploaded(grafana, path)
        files = re.findall(r"\$__file\{([^}]+)\}", text)
        for name in files:
            assert name in uploads, f"{path} reads {name}, which Grafana's container does not get"
        referenced += len(files)
        # No other `$`: Grafana would expand it from its environment.
        assert text.count("$") == len(files), path
    assert referenced == 3  # the InfluxDB token, the Slack webhook, the PagerDuty key


def test_no_secret_value_is_in_any_rendered_file(prod_with_every_channel: Plan) -> None:
    # Generated secrets are MOCKSECRET... under the mocks (harness.mock_engine.fake_secret).
    secrets = [SLACK, PAGERDUTY, SMTP_PASSWORD, fake_secret("")[: len("MOCKSECRET")]]
    checked = 0
    for resource in containers(prod_with_every_channel):
        for upload in resource.plain_inputs.get("uploads", []):
            if upload.get("permissions") == "0400":
                continue  # a secret file: that is where secrets belong
            checked += 1
            for secret in secrets:
                assert secret not in upload["content"], f"{resource.name}:{upload['file']}"
    assert checked >= 8


# --- the dashboard ----------------------------------------------------------------------------


def test_dashboard_is_provisioned_and_reads_existing_datasources(plan: Plan, stack: str) -> None:
    provider = grafana_file(plan, DASHBOARD_PROVIDER)
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert DASHBOARD.rsplit("/", 1)[0] == entry["options"]["path"]
    board = grafana_file(plan, DASHBOARD)
    assert board == dashboard(settings_of(stack))
    assert board["uid"] == f"{stack}-platform"
    datasource_uids = {ds["uid"] for ds in grafana_file(plan, DATASOURCES)["datasources"]}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] in datasource_uids
        assert panel["targets"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    titles = " ".join(panel["title"] for panel in board["panels"]).lower()
    for topic in ("not running", "unhealthy", "lag", "error", "cpu", "memory", "disk", "backup"):
        assert topic in titles, topic


def test_pitr_is_watched_from_the_runners_own_metrics(stack: str) -> None:
    settings = settings_of(stack)
    rules = {(rule.key, rule.severity): rule for rule in alert_rules(settings)}
    archiving = rules["pitr-archiving", "critical"]
    assert f"r.last_archived_age_s > {3 * settings.pitr.archive_timeout_seconds}.0" in archiving.query.text
    assert archiving.no_data == "Alerting"
    stale = rules["pitr-backup-stale", "warning"]
    slack = settings.backup.max_age_hours - 24
    assert f'if r.kind == "pitr-full" then {7 * 24 + slack:.1f}' in stale.query.text
    assert f'if r.kind == "pitr-diff" then {settings.backup.max_age_hours:.1f}' in stale.query.text
    assert stale.threshold == 1 and stale.no_data == "Alerting"


def test_staging_seed_runs_warn_and_only_staging_watches_its_datas_age(stack: str) -> None:
    settings = settings_of(stack)
    rules = {rule.key: rule for rule in alert_rules(settings)}
    failed = rules["seed-failed"]
    assert failed.severity == "warning"
    assert 'r.kind == "staging-seed" or r.kind == "seed-load"' in failed.query.text
    # A seed failure is not a backup failure: backup-failed leaves both kinds to seed-failed.
    assert 'r.kind != "staging-seed" and r.kind != "seed-load"' in rules["backup-failed"].query.text
    loads = settings.staging_seed is not None and settings.staging_seed.source_stack is not None
    assert ("staging-data-stale" in rules) == loads
    if loads:
        stale = rules["staging-data-stale"]
        assert (stale.severity, stale.threshold, stale.comparison, stale.no_data) == ("warning", 14, "gt", "Alerting")
        assert 'r._measurement == "audit_x_seed" and r._field == "seed_age_s"' in stale.query.text
        assert "r._value / 86400.0" in stale.query.text


def test_the_dashboard_shows_the_age_of_stagings_data_where_it_runs_on_a_seed(stack: str) -> None:
    settings = settings_of(stack)
    titles = {panel["title"]: panel for panel in dashboard(settings)["panels"]}
    age = titles.get("Days since audit-x/audit-x/prod made the data this stack runs on")
    loads = settings.staging_seed is not None and settings.staging_seed.source_stack is not None
    assert (age is not None) == loads
    if age is not None:
        assert 'r._field == "seed_age_s"' in age["targets"][0]["query"]
        steps = age["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [step["value"] for step in steps][-1] == 14  # critical where the alert fires
