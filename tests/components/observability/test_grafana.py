"""Grafana built alone: the admin-password job first, then the server on both networks, provisioned
from the files it is given, every secret a file of Grafana's user, notification routes only when
given."""

from __future__ import annotations

import pulumi
import yaml

from components.lib import tokens
from components.observability.grafana import Grafana, NotificationRoutes, notification_settings
from components.settings import GrafanaSettings, SmtpSettings
from harness.mock_engine import DeclaredResource, Plan, mock_image_id, run_component
from tests.helpers import (
    children,
    component_context,
    declared,
    env,
    healthcheck_command,
    influxdb_endpoint,
    labels,
    networks,
    upload,
    volumes,
)

SETTINGS = GrafanaSettings(image="grafana/grafana:11.6.0", admin_user="ops", memory_limit_mb=384)
PUBLIC_URL = "https://grafana.audit.example.org"
ALERTING = "apiVersion: 1\ngroups: []\n"
DASHBOARDS = {"platform.json": '{"title": "Platform"}', "app.json": '{"title": "App"}'}
SLACK_URL = "https://hooks.slack.com/services/T0/B0/grafana-alone"
SMTP = SmtpSettings(host="smtp.example.org:587", user="grafana", from_address="alerts@example.org")
GRAFANA_USER = {"permissions": "0400", "owner": "472", "group": "472"}


def build(*, with_routes: bool = False) -> Plan:
    def declare() -> None:
        ctx = component_context()
        routes = (
            notification_settings(
                SMTP,
                slack_webhook_url=pulumi.Output.secret(SLACK_URL),
                pagerduty_routing_key=None,
                smtp_password=pulumi.Output.secret("smtp-password-value"),
            )
            if with_routes
            else NotificationRoutes()
        )
        Grafana(
            "audit-x-test-grafana",
            SETTINGS,
            ctx=ctx,
            public_url=PUBLIC_URL,
            admin_password=pulumi.Output.secret("grafana-admin-value"),
            influxdb=influxdb_endpoint(),
            loki_url="http://logs.test:3100",
            alerting_file=ALERTING,
            dashboards=DASHBOARDS,
            notifications=routes,
            networks=networks(ctx),
        )

    return run_component(declare)


def server_of(plan: Plan) -> DeclaredResource:
    return declared(plan, tokens.CONTAINER, "audit-x-test-grafana")


def test_grafana_alone_declares_its_volume_image_password_job_and_server_on_both_networks() -> None:
    plan = build()
    assert children(plan, "audit-x-test-grafana") == [
        (tokens.CONTAINER, "audit-x-test-grafana"),
        (tokens.CONTAINER, "audit-x-test-grafana-admin-password"),
        (tokens.REMOTE_IMAGE, "audit-x-test-grafana-image"),
        (tokens.VOLUME, "audit-x-test-grafana-data"),
    ]
    server = server_of(plan)
    assert server.inputs["image"] == mock_image_id("grafana/grafana:11.6.0")
    assert server.inputs["networksAdvanced"] == [
        {"name": "audit-x-test-data", "aliases": ["grafana"]},
        {"name": "audit-x-test-app", "aliases": ["grafana"]},
    ]
    assert volumes(server) == {"/var/lib/grafana": "audit-x-test-grafana-data"}
    assert server.inputs["memory"] == 384
    assert (labels(server)["io.audit-x.service"], labels(server)["io.audit-x.role"]) == ("grafana", "dashboards")
    assert env(server) == {
        "GF_SECURITY_ADMIN_USER": "ops",
        "GF_SECURITY_ADMIN_PASSWORD__FILE": "/var/lib/grafana/.admin-password",
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_SERVER_ROOT_URL": PUBLIC_URL,
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_LOG_MODE": "console",
        "GF_LOG_CONSOLE_FORMAT": "json",
    }
    assert healthcheck_command(server) == (
        'wget -q -O- http://127.0.0.1:3000/api/health | grep -q \'"database": *"ok"\''
    )


def test_the_admin_password_reaches_the_job_alone_and_the_server_waits_for_it() -> None:
    plan = build()
    server = server_of(plan)
    job = declared(plan, tokens.CONTAINER, "audit-x-test-grafana-admin-password")
    assert job.urn in server.dependencies
    # Through depends_on alone: a re-run of the job never replaces the server.
    assert not any(job.urn in deps for deps in server.property_dependencies.values())
    assert upload(job, "/run/secrets/grafana-admin-password")["content"] == "[secret]"
    assert upload(job, "/run/secrets/grafana-admin-password", plain=True) == {
        "file": "/run/secrets/grafana-admin-password",
        "content": "grafana-admin-value",
        **GRAFANA_USER,
    }
    assert "grafana-admin-value" not in str(server.plain_inputs)
    assert env(job) == {
        "GF_PATHS_DATA": "/var/lib/grafana",
        "NEW_PASSWORD_FILE": "/run/secrets/grafana-admin-password",
        "PASSWORD_FILE": "/var/lib/grafana/.admin-password",
    }
    assert [n["name"] for n in job.inputs["networksAdvanced"]] == ["audit-x-test-data"]
    assert volumes(job) == {"/var/lib/grafana": "audit-x-test-grafana-data"}


def test_it_is_provisioned_from_the_files_and_endpoint_it_is_given() -> None:
    server = server_of(build())
    datasources = yaml.safe_load(upload(server, "/etc/grafana/provisioning/datasources/audit-x.yaml")["content"])
    influxdb, loki = datasources["datasources"]
    assert (influxdb["url"], influxdb["jsonData"]["organization"], influxdb["jsonData"]["defaultBucket"]) == (
        "http://metrics.test:8086",
        "test-org",
        "test-metrics",
    )
    assert influxdb["secureJsonData"] == {"token": "$__file{/run/secrets/influxdb-token}"}
    assert upload(server, "/run/secrets/influxdb-token")["content"] == "[secret]"
    assert upload(server, "/run/secrets/influxdb-token", plain=True) == {
        "file": "/run/secrets/influxdb-token",
        "content": "influxdb-token-value",
        **GRAFANA_USER,
    }
    assert loki["url"] == "http://logs.test:3100"
    assert upload(server, "/etc/grafana/provisioning/alerting/audit-x.yaml")["content"] == ALERTING
    for name, content in DASHBOARDS.items():
        assert upload(server, f"/etc/grafana/dashboards/{name}") == {
            "file": f"/etc/grafana/dashboards/{name}",
            "content": content,
            "permissions": "0444",
        }
    provider = yaml.safe_load(upload(server, "/etc/grafana/provisioning/dashboards/audit-x.yaml")["content"])
    assert provider["providers"][0]["options"] == {"path": "/etc/grafana/dashboards"}


def test_notification_routes_reach_grafana_only_when_given() -> None:
    without = server_of(build())
    paths = {u["file"] for u in without.inputs["uploads"]}
    assert not paths & {
        "/run/secrets/slack-webhook-url",
        "/run/secrets/pagerduty-routing-key",
        "/run/secrets/smtp-password",
    }
    assert not any(key.startswith("GF_SMTP_") for key in env(without))

    server = server_of(build(with_routes=True))
    assert {k: v for k, v in env(server).items() if k.startswith("GF_SMTP_")} == {
        "GF_SMTP_ENABLED": "true",
        "GF_SMTP_HOST": "smtp.example.org:587",
        "GF_SMTP_FROM_ADDRESS": "alerts@example.org",
        "GF_SMTP_FROM_NAME": "audit-x Grafana",
        "GF_SMTP_USER": "grafana",
        "GF_SMTP_PASSWORD__FILE": "/run/secrets/smtp-password",
    }
    for path, value in (
        ("/run/secrets/slack-webhook-url", SLACK_URL),
        ("/run/secrets/smtp-password", "smtp-password-value"),
    ):
        assert upload(server, path)["content"] == "[secret]"
        assert upload(server, path, plain=True) == {"file": path, "content": value, **GRAFANA_USER}
    assert "/run/secrets/pagerduty-routing-key" not in {u["file"] for u in server.inputs["uploads"]}
