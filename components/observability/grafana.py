"""Grafana: dashboards and alerting, reachable by operators, reading InfluxDB and Loki.

Anonymous access and sign-up are off; the admin password is generated and read from a file.
Everything Grafana shows or sends is provisioned from files the program renders: the datasources
(fixed uids, so dashboards and rules can name them), the platform dashboard, and the alerting
(rules, contact points, notification policy; components/observability/alerting.py). No secret is
in those files nor in the environment: the InfluxDB token, the Slack webhook and the PagerDuty key
are `$__file{...}` references to secret files readable by Grafana's user alone, and SMTP's
password is `GF_SMTP_PASSWORD__FILE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker
import yaml

from components.data.influxdb import InfluxDbEndpoint
from components.lib.containers import (
    SECRETS_DIR,
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    named_volume,
    on_network,
    one_shot_container,
    pinned_image,
    script_job,
    succeeded,
)
from components.lib.context import EnvironmentContext
from components.lib.files import read_shipped
from components.observability.alerting import (
    DATASOURCE_UIDS,
    FOLDER,
    PAGERDUTY_FILE,
    SLACK_FILE,
    file_reference,
)
from components.observability.signals import INFLUXDB, LOKI
from components.platform.network import Networks
from components.settings import GrafanaSettings, SmtpSettings

PORT = 3000
DATA_DIR = "/var/lib/grafana"
NEW_PASSWORD_FILE = f"{SECRETS_DIR}/grafana-admin-password"
# On the data volume, written by the admin-password job: the server's inputs carry no password,
# so a rotation never replaces it.
PASSWORD_FILE = f"{DATA_DIR}/.admin-password"
INFLUXDB_TOKEN_FILE = f"{SECRETS_DIR}/influxdb-token"
SMTP_PASSWORD_FILE = f"{SECRETS_DIR}/smtp-password"
DATASOURCES_FILE = "/etc/grafana/provisioning/datasources/audit-x.yaml"
ALERTING_FILE = "/etc/grafana/provisioning/alerting/audit-x.yaml"
DASHBOARD_PROVIDER_FILE = "/etc/grafana/provisioning/dashboards/audit-x.yaml"
DASHBOARDS_DIR = "/etc/grafana/dashboards"
INFLUXDB_DATASOURCE_UID = DATASOURCE_UIDS[INFLUXDB]
LOKI_DATASOURCE_UID = DATASOURCE_UIDS[LOKI]
# uid/gid of the `grafana` user in the official image.
GRAFANA_UID = "472"

# The admin-password job's script, beside this file.
RESET_ADMIN_SCRIPT = read_shipped(__file__, "grafana_admin_password.sh")

HEALTH_COMMAND = 'wget -q -O- http://127.0.0.1:3000/api/health | grep -q \'"database": *"ok"\''


def datasources_file(*, influxdb_url: str, org: str, bucket: str, loki_url: str) -> str:
    """Grafana datasource provisioning (apiVersion 1), without any secret value."""
    document = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "InfluxDB",
                "uid": INFLUXDB_DATASOURCE_UID,
                "type": "influxdb",
                "access": "proxy",
                "url": influxdb_url,
                "isDefault": True,
                "editable": False,
                "jsonData": {"version": "Flux", "organization": org, "defaultBucket": bucket},
                "secureJsonData": {"token": file_reference(INFLUXDB_TOKEN_FILE)},
            },
            {
                "name": "Loki",
                "uid": LOKI_DATASOURCE_UID,
                "type": "loki",
                "access": "proxy",
                "url": loki_url,
                "editable": False,
                # request_id is in the line, not a label: a derived field links it to its query.
                "jsonData": {"maxLines": 5000},
            },
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def dashboard_provider_file() -> str:
    """Grafana's dashboard provisioning: the rendered dashboards, read-only in the UI."""
    document = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "audit-x",
                "folder": FOLDER,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": DASHBOARDS_DIR},
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class NotificationRoutes:
    """What Grafana's contact points need, only what is configured: plain settings in its
    environment, every secret as a file readable by Grafana's user alone."""

    env: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    files: list[SecretFile] = field(default_factory=list)


def notification_settings(
    smtp: SmtpSettings | None,
    *,
    slack_webhook_url: pulumi.Output[str] | None,
    pagerduty_routing_key: pulumi.Output[str] | None,
    smtp_password: pulumi.Output[str] | None,
) -> NotificationRoutes:
    """The routes configured: Slack, PagerDuty and e-mail, each only where its setting is given."""
    routes = NotificationRoutes()
    env, files = routes.env, routes.files
    if slack_webhook_url is not None:
        files.append(SecretFile(SLACK_FILE, slack_webhook_url, owner=GRAFANA_UID))
    if pagerduty_routing_key is not None:
        files.append(SecretFile(PAGERDUTY_FILE, pagerduty_routing_key, owner=GRAFANA_UID))
    if smtp is not None:
        env |= {
            "GF_SMTP_ENABLED": "true",
            "GF_SMTP_HOST": smtp.host,
            "GF_SMTP_FROM_ADDRESS": smtp.from_address,
            "GF_SMTP_FROM_NAME": "audit-x Grafana",
        }
        if smtp.user is not None:
            env["GF_SMTP_USER"] = smtp.user
        if smtp_password is not None:
            env["GF_SMTP_PASSWORD__FILE"] = SMTP_PASSWORD_FILE
            files.append(SecretFile(SMTP_PASSWORD_FILE, smtp_password, owner=GRAFANA_UID))
    return routes


class Grafana(pulumi.ComponentResource):
    volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    admin_password_job: docker.Container
    url: str

    def __init__(
        self,
        name: str,
        settings: GrafanaSettings,
        *,
        ctx: EnvironmentContext,
        public_url: str,
        admin_password: pulumi.Output[str],
        influxdb: InfluxDbEndpoint,
        loki_url: str,
        alerting_file: str,
        dashboards: dict[str, str],
        notifications: NotificationRoutes,
        networks: Networks,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:observability:Grafana", name, None, opts)
        self.url = public_url
        self.volume = named_volume(ctx, f"{name}-data", "grafana", "data", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
        # Runs before the server: writes the password file a first start reads, and on a rotation
        # changes the password in the running Grafana (a new container, created first).
        self.admin_password_job = one_shot_container(
            ctx,
            f"{name}-admin-password",
            script_job(
                service="grafana",
                role="admin-password",
                image=self.image.image_id,
                script=RESET_ADMIN_SCRIPT,
                networks=[on_network(networks.data)],
                env={
                    "GF_PATHS_DATA": DATA_DIR,
                    "NEW_PASSWORD_FILE": NEW_PASSWORD_FILE,
                    "PASSWORD_FILE": PASSWORD_FILE,
                },
                files=[SecretFile(NEW_PASSWORD_FILE, admin_password, owner=GRAFANA_UID)],
                volumes={DATA_DIR: self.volume.name},
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                service="grafana",
                role="dashboards",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                # data: to query InfluxDB; app: outbound, for alert notifications.
                networks=[on_network(networks.data, "grafana"), on_network(networks.app, "grafana")],
                env={
                    "GF_SECURITY_ADMIN_USER": settings.admin_user,
                    "GF_SECURITY_ADMIN_PASSWORD__FILE": PASSWORD_FILE,
                    "GF_AUTH_ANONYMOUS_ENABLED": "false",
                    "GF_USERS_ALLOW_SIGN_UP": "false",
                    "GF_SERVER_ROOT_URL": public_url,
                    "GF_ANALYTICS_REPORTING_ENABLED": "false",
                    "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
                    "GF_LOG_MODE": "console",
                    "GF_LOG_CONSOLE_FORMAT": "json",
                    **notifications.env,
                },
                files=[
                    SecretFile(INFLUXDB_TOKEN_FILE, influxdb.token, owner=GRAFANA_UID),
                    *notifications.files,
                    ConfigFile(
                        DATASOURCES_FILE,
                        datasources_file(
                            influxdb_url=influxdb.url, org=influxdb.org, bucket=influxdb.bucket, loki_url=loki_url
                        ),
                    ),
                    ConfigFile(ALERTING_FILE, alerting_file),
                    ConfigFile(DASHBOARD_PROVIDER_FILE, dashboard_provider_file()),
                    *[ConfigFile(f"{DASHBOARDS_DIR}/{name}", content) for name, content in sorted(dashboards.items())],
                ],
                volumes={DATA_DIR: self.volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[succeeded(self.admin_password_job)]),
        )
        self.register_outputs({"container": self.container.name, "url": public_url})
