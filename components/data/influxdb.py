"""InfluxDB 2: metrics store, on the internal data network only.

Set up on first start by the image (org, bucket, retention, first user and operator token from
the DOCKER_INFLUXDB_INIT_* variables, secrets read from files). Later starts find the data
volume already set up and skip it. The health check asks InfluxDB's unauthenticated `/health`
endpoint: the operator token is never on a command line (a probe's argv is readable by every
user of the host in /proc), and the backup runner and Grafana, which use the token, fail loudly
on a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.lib.containers import (
    SECRETS_DIR,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    named_volume,
    on_network,
    pinned_image,
)
from components.lib.context import EnvironmentContext
from components.settings import InfluxDbSettings

PORT = 8086
HOSTNAME = "influxdb"
ADMIN_USER = "admin"
PASSWORD_FILE = f"{SECRETS_DIR}/influxdb-admin-password"
TOKEN_FILE = f"{SECRETS_DIR}/influxdb-operator-token"
# uid/gid of the `influxdb` user in the official image.
INFLUXDB_UID = "1000"

# INFLUXDB_PORT is unset in the container and lets the tests aim the same command elsewhere.
HEALTH_COMMAND = 'wget -q -O- "http://127.0.0.1:${INFLUXDB_PORT:-8086}/health" | grep -Eq \'"status": ?"pass"\''


@dataclass(frozen=True)
class InfluxDbEndpoint:
    """What a client of the metrics store needs: where it is, its org and bucket, and its token."""

    url: str
    org: str
    bucket: str
    token: pulumi.Output[str]


class InfluxDb(pulumi.ComponentResource):
    data_volume: docker.Volume
    config_volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    org: str
    bucket: str
    url: str = f"http://{HOSTNAME}:{PORT}"

    def __init__(
        self,
        name: str,
        settings: InfluxDbSettings,
        *,
        ctx: EnvironmentContext,
        admin_password: pulumi.Output[str],
        operator_token: pulumi.Output[str],
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:InfluxDb", name, None, opts)
        self.org = settings.org
        self.bucket = settings.bucket
        self.data_volume = named_volume(ctx, f"{name}-data", "influxdb", "data", self)
        self.config_volume = named_volume(ctx, f"{name}-config", "influxdb", "config", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                service="influxdb",
                role="metrics",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                networks=[on_network(data_network, HOSTNAME)],
                env={
                    "DOCKER_INFLUXDB_INIT_MODE": "setup",
                    "DOCKER_INFLUXDB_INIT_USERNAME": ADMIN_USER,
                    "DOCKER_INFLUXDB_INIT_PASSWORD_FILE": PASSWORD_FILE,
                    "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE": TOKEN_FILE,
                    "DOCKER_INFLUXDB_INIT_ORG": settings.org,
                    "DOCKER_INFLUXDB_INIT_BUCKET": settings.bucket,
                    "DOCKER_INFLUXDB_INIT_RETENTION": f"{settings.retention_days}d",
                    "INFLUXD_REPORTING_DISABLED": "true",
                    "INFLUXD_LOG_LEVEL": "info",
                },
                files=[
                    SecretFile(PASSWORD_FILE, admin_password, owner=INFLUXDB_UID),
                    SecretFile(TOKEN_FILE, operator_token, owner=INFLUXDB_UID),
                ],
                volumes={"/var/lib/influxdb2": self.data_volume.name, "/etc/influxdb2": self.config_volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND, start_period="60s"),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container": self.container.name, "url": self.url})

    def endpoint(self, token: pulumi.Output[str]) -> InfluxDbEndpoint:
        """The metrics store as a client holding `token` reaches it."""
        return InfluxDbEndpoint(url=self.url, org=self.org, bucket=self.bucket, token=token)
