"""Grafana: dashboards and alerting, reachable by operators, reading InfluxDB.

Anonymous access and sign-up are off; the admin password is generated and read from a file.
The InfluxDB datasource is provisioned from a file the program renders, with a fixed uid so
dashboards and alert rules can name it. The token is not in that file: Grafana expands
$INFLUXDB_TOKEN from its environment when it reads the provisioning.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import yaml

from components.containers import (
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
)
from components.context import EnvironmentContext
from components.settings import GrafanaSettings

PORT = 3000
PASSWORD_FILE = f"{SECRETS_DIR}/grafana-admin-password"
DATASOURCES_FILE = "/etc/grafana/provisioning/datasources/audit-x.yaml"
INFLUXDB_DATASOURCE_UID = "audit-x-influxdb"
LOKI_DATASOURCE_UID = "audit-x-loki"
# uid/gid of the `grafana` user in the official image.
GRAFANA_UID = "472"

# Grafana applies GF_SECURITY_ADMIN_PASSWORD only when it creates its database; afterwards the
# admin password is changed with its CLI, which a one-shot job runs against the data volume.
RESET_ADMIN_COMMAND = (
    "grafana cli --homepath /usr/share/grafana --config /etc/grafana/grafana.ini "
    f'admin reset-admin-password --password-from-stdin < "{PASSWORD_FILE}"'
)

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
                "secureJsonData": {"token": "$INFLUXDB_TOKEN"},
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


class Grafana(pulumi.ComponentResource):
    volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    admin_password_job: docker.Container
    url: str

    def __init__(
        self,
        ctx: EnvironmentContext,
        settings: GrafanaSettings,
        *,
        public_url: str,
        admin_password: pulumi.Output[str],
        influxdb_token: pulumi.Output[str],
        influxdb_url: str,
        influxdb_org: str,
        influxdb_bucket: str,
        loki_url: str,
        data_network: docker.Network,
        app_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:observability:Grafana", ctx.name("grafana"), None, opts)
        self.url = public_url
        self.volume = named_volume(ctx, "grafana", "data", self)
        self.image = pinned_image(ctx, "grafana", settings.image, self)
        self.container = long_running_container(
            ctx,
            ctx.name("grafana"),
            ContainerSpec(
                service="grafana",
                role="dashboards",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                # data: to query InfluxDB; app: outbound, for alert notifications.
                networks=[on_network(data_network, "grafana"), on_network(app_network, "grafana")],
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
                    "INFLUXDB_TOKEN": influxdb_token,
                },
                files=[
                    SecretFile(PASSWORD_FILE, admin_password, owner=GRAFANA_UID),
                    ConfigFile(
                        DATASOURCES_FILE,
                        datasources_file(
                            influxdb_url=influxdb_url, org=influxdb_org, bucket=influxdb_bucket, loki_url=loki_url
                        ),
                    ),
                ],
                volumes={"/var/lib/grafana": self.volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        # Runs after Grafana, whenever the password changes (a new upload replaces the job), so
        # the stored admin password is the one in Secrets Manager.
        self.admin_password_job = one_shot_container(
            ctx,
            ctx.name("grafana", "admin-password"),
            ContainerSpec(
                service="grafana",
                role="admin-password",
                image=self.image.image_id,
                memory_mb=128,
                networks=[on_network(data_network)],
                # The image's entrypoint starts the server: this job needs a plain shell.
                entrypoint=["sh", "-c"],
                command=[RESET_ADMIN_COMMAND],
                env={"GF_PATHS_DATA": "/var/lib/grafana"},
                files=[SecretFile(PASSWORD_FILE, admin_password, owner=GRAFANA_UID)],
                volumes={"/var/lib/grafana": self.volume.name},
                healthcheck=None,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.container]),
        )
        self.register_outputs({"container": self.container.name, "url": public_url})
