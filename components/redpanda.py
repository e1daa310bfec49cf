"""Redpanda: the Kafka API for audit events, a single node on the internal data network.

Seastar's memory and cores come from config and sit inside the container's memory limit. The
broker advertises the `redpanda` alias, so the app's KAFKA_BROKERS is the same in every
environment.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.containers import (
    ContainerSpec,
    HealthCheck,
    long_running_container,
    named_volume,
    on_network,
    pinned_image,
)
from components.context import EnvironmentContext
from components.settings import RedpandaSettings

KAFKA_PORT = 9092
ADMIN_PORT = 9644
HOSTNAME = "redpanda"
DATA_DIR = "/var/lib/redpanda/data"

# Healthy once the cluster reports itself healthy (all partitions have leaders), not merely
# once the process answers.
HEALTH_COMMAND = "rpk cluster health | grep -Eq '^Healthy:[[:space:]]+true'"


def start_command(settings: RedpandaSettings) -> list[str]:
    return [
        "redpanda",
        "start",
        # Containers share cores with others on the host: no busy-polling, no core pinning.
        "--overprovisioned",
        f"--smp={settings.cores}",
        f"--memory={settings.memory_mb}M",
        "--reserve-memory=0M",
        "--node-id=0",
        "--check=false",
        f"--kafka-addr=internal://0.0.0.0:{KAFKA_PORT}",
        f"--advertise-kafka-addr=internal://{HOSTNAME}:{KAFKA_PORT}",
        "--rpc-addr=0.0.0.0:33145",
        f"--advertise-rpc-addr={HOSTNAME}:33145",
        "--default-log-level=info",
    ]


class Redpanda(pulumi.ComponentResource):
    volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    brokers: str = f"{HOSTNAME}:{KAFKA_PORT}"

    def __init__(
        self,
        ctx: EnvironmentContext,
        settings: RedpandaSettings,
        *,
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:Redpanda", ctx.name("redpanda"), None, opts)
        self.volume = named_volume(ctx, "redpanda", "data", self)
        self.image = pinned_image(ctx, "redpanda", settings.image, self)
        self.container = long_running_container(
            ctx,
            ctx.name("redpanda"),
            ContainerSpec(
                service="redpanda",
                role="broker",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                networks=[on_network(data_network, HOSTNAME)],
                command=start_command(settings),
                volumes={DATA_DIR: self.volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND, start_period="60s"),
                stop_grace_seconds=60,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container": self.container.name, "brokers": self.brokers})
