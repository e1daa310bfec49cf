"""The environment's Docker networks.

`data` is internal: the data services on it can reach each other and nothing outside, and
nothing outside reaches them (no host port is published either). `app` is a plain bridge with
outbound access, for containers that must call out (Sentry, Slack, S3) or be reached later by
the edge proxy. App containers join both.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.lib.context import EnvironmentContext


class Networks(pulumi.ComponentResource):
    data: docker.Network
    app: docker.Network

    def __init__(self, name: str, *, ctx: EnvironmentContext, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("audit-x:network:Networks", name, None, opts)
        self.data = self._network(ctx, "data", internal=True)
        self.app = self._network(ctx, "app", internal=False)
        self.register_outputs({"data": self.data.name, "app": self.app.name})

    def _network(self, ctx: EnvironmentContext, purpose: str, *, internal: bool) -> docker.Network:
        name = ctx.name(purpose)
        return docker.Network(
            name,
            name=name,
            driver="bridge",
            internal=internal,
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in ctx.labels("network", purpose).items()],
            opts=pulumi.ResourceOptions(parent=self),
        )
