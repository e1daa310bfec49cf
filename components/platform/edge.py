"""The edge proxy: the one container that publishes host ports (80 and 443).

Traefik v3, configured by files the program renders rather than by Docker labels: the labels
route only through the Docker socket, and the socket is kept for the metrics collector alone
(read-only). The file provider gives the same behaviour here:

- TLS for the environment's domain (and grafana.<domain>) from Let's Encrypt, HTTP redirected;
- traffic only to web containers whose `/ready` answers (Traefik's active health check);
- per-client-IP rate limiting, average and burst from config;
- security headers; a retry on a failed connection, so a container being stopped does not
  surface as an error while others are healthy;
- JSON access logs on stdout.

Routes name each web container by its own Docker name, never by an alias a new container
would share with an old one: a starting container is not reachable through the edge. The
routes live in a file on a small volume that Traefik watches; a one-shot job writes it once the
web containers it names are healthy, and the old containers are removed after that, at the end
of the update. A release therefore changes the routes, not the edge: the edge is not restarted.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker
import yaml

from components.lib.containers import (
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    long_running_container,
    named_volume,
    on_network,
    one_shot_container,
    pinned_image,
    script_job,
)
from components.lib.context import EnvironmentContext
from components.lib.files import read_shipped
from components.settings import EdgeSettings

STATIC_CONFIG = "/etc/traefik/traefik.yml"
ROUTES_DIR = "/etc/traefik/routes"
NEW_ROUTES_FILE = "/run/audit-x/routes.yml"
ROUTES_SCRIPT = read_shipped(__file__, "edge_routes.sh")
ACME_DIR = "/var/lib/traefik"
PING_PORT = 8082
# Prometheus metrics (per service: requests by status code, a latency histogram), scraped by the
# collector into InfluxDB: how a canary is compared with the stable version (ops/canary.py).
METRICS_PORT = 8083
# The services of the app's traffic, as Traefik's metrics label them (`<name>@file`).
STABLE_SERVICE = "web-stable"
CANARY_SERVICE = "web-canary"
CANARY_HEADER = "X-Canary"
# Latency buckets (seconds) fine enough to tell a p99 of 0.25 s from 0.3 s.
LATENCY_BUCKETS = [0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0]
HEALTH_COMMAND = f"wget -q -O- http://127.0.0.1:{PING_PORT}/ping | grep -qx OK"
READY_PATH = "/ready"


def static_config(settings: EdgeSettings) -> dict[str, Any]:
    return {
        "entryPoints": {
            "web": {
                "address": ":80",
                "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https"}}},
            },
            "websecure": {"address": ":443"},
            "ping": {"address": f":{PING_PORT}"},
            "metrics": {"address": f":{METRICS_PORT}"},
        },
        "metrics": {
            "prometheus": {
                "entryPoint": "metrics",
                "addServicesLabels": True,
                "addEntryPointsLabels": False,
                "addRoutersLabels": False,
                "buckets": LATENCY_BUCKETS,
            }
        },
        "providers": {"file": {"directory": ROUTES_DIR, "watch": True}},
        "certificatesResolvers": {
            "letsencrypt": {
                "acme": {
                    "email": settings.acme_email,
                    "storage": f"{ACME_DIR}/acme.json",
                    "httpChallenge": {"entryPoint": "web"},
                }
            }
        },
        "ping": {"entryPoint": "ping"},
        "log": {"format": "json", "level": "INFO"},
        "accessLog": {"format": "json", "fields": {"headers": {"defaultMode": "drop"}}},
        "api": {"dashboard": False},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }


def web_services(
    web_servers: list[str], canary_servers: list[str], canary_weight: int, web_port: int
) -> dict[str, Any]:
    """The app's traffic: `web` splits it by weight between the stable and the canary servers.

    Each side checks its servers' `/ready`; the weighted service's own `healthCheck: {}` makes
    it follow its children's health, so a side with no healthy server gets nothing (Traefik's
    wrr balancer). A side of weight 0 is left out of the split: Traefik ignores a non-positive
    weight anyway ("A handler with a non-positive weight is ignored", pkg/server/service/
    loadbalancer/wrr), and leaving it out says so in the file.
    """

    def pool(servers: list[str]) -> dict[str, Any]:
        return {
            "loadBalancer": {
                "servers": [{"url": f"http://{server}:{web_port}"} for server in servers],
                "healthCheck": {"path": READY_PATH, "interval": "5s", "timeout": "3s"},
                "passHostHeader": True,
            }
        }

    weights = (
        {STABLE_SERVICE: 100 - canary_weight, CANARY_SERVICE: canary_weight}
        if canary_servers
        else {STABLE_SERVICE: 100}
    )
    services: dict[str, Any] = {
        "web": {
            "weighted": {
                "services": [{"name": name, "weight": weight} for name, weight in weights.items() if weight > 0],
                "healthCheck": {},
            }
        },
        STABLE_SERVICE: pool(web_servers),
    }
    if canary_servers:
        services[CANARY_SERVICE] = pool(canary_servers)
    return services


def dynamic_config(
    settings: EdgeSettings,
    *,
    domain: str,
    web_servers: list[str],
    web_port: int,
    grafana_host: str,
    canary_servers: list[str] | None = None,
    canary_weight: int = 0,
) -> dict[str, Any]:
    middlewares = ["rate-limit", "security-headers", "retry"]
    tls = {"certResolver": "letsencrypt"}
    canary_routers = (
        {
            # `X-Canary: 1` always reaches the canary, at any weight: smoke tests before any user.
            "app-canary": {
                "rule": f"Host(`{domain}`) && Header(`{CANARY_HEADER}`, `1`)",
                "priority": 1000,
                "entryPoints": ["websecure"],
                "service": CANARY_SERVICE,
                "middlewares": middlewares,
                "tls": tls,
            }
        }
        if canary_servers
        else {}
    )
    return {
        "http": {
            "routers": {
                "app": {
                    "rule": f"Host(`{domain}`)",
                    "entryPoints": ["websecure"],
                    "service": "web",
                    "middlewares": middlewares,
                    "tls": tls,
                },
                **canary_routers,
                "grafana": {
                    "rule": f"Host(`grafana.{domain}`)",
                    "entryPoints": ["websecure"],
                    "service": "grafana",
                    "middlewares": middlewares,
                    "tls": tls,
                },
            },
            "middlewares": {
                "rate-limit": {
                    "rateLimit": {
                        "average": settings.rate_limit_average,
                        "burst": settings.rate_limit_burst,
                        "period": "1s",
                        # The client's own address: the edge is the first hop, no header to trust.
                        "sourceCriterion": {"ipStrategy": {"depth": 0}},
                    }
                },
                "security-headers": {
                    "headers": {
                        "stsSeconds": 31536000,
                        "stsIncludeSubdomains": True,
                        "contentTypeNosniff": True,
                        "frameDeny": True,
                        "referrerPolicy": "strict-origin-when-cross-origin",
                    }
                },
                "retry": {"retry": {"attempts": 2, "initialInterval": "100ms"}},
            },
            "services": {
                **web_services(web_servers, canary_servers or [], canary_weight, web_port),
                "grafana": {"loadBalancer": {"servers": [{"url": f"http://{grafana_host}:3000"}]}},
            },
        }
    }


class Edge(pulumi.ComponentResource):
    volume: docker.Volume
    routes_volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    routes_job: docker.Container

    def __init__(
        self,
        name: str,
        settings: EdgeSettings,
        *,
        ctx: EnvironmentContext,
        domain: str,
        web: list[docker.Container],
        web_port: int,
        canary: list[docker.Container] | None = None,
        canary_weight: int = 0,
        grafana_host: str,
        app_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:edge:Edge", name, None, opts)
        self.volume = named_volume(ctx, f"{name}-acme", "edge", "acme", self)
        self.routes_volume = named_volume(ctx, f"{name}-routes", "edge", "routes", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                service="edge",
                role="proxy",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                # The app network only: the edge never sees a data service.
                networks=[on_network(app_network, "edge")],
                command=["traefik", f"--configFile={STATIC_CONFIG}"],
                files=[ConfigFile(STATIC_CONFIG, yaml.safe_dump(static_config(settings), sort_keys=False))],
                volumes={ACME_DIR: self.volume.name, ROUTES_DIR: self.routes_volume.name},
                ports=[(80, 80), (443, 443)],
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        canary = canary or []
        names = [container.name for container in [*web, *canary]]
        routes = pulumi.Output.all(*names).apply(
            lambda servers: yaml.safe_dump(
                dynamic_config(
                    settings,
                    domain=domain,
                    web_servers=list(servers[: len(web)]),
                    web_port=web_port,
                    grafana_host=grafana_host,
                    canary_servers=list(servers[len(web) :]),
                    canary_weight=canary_weight,
                ),
                sort_keys=False,
            )
        )
        self.routes_job = one_shot_container(
            ctx,
            f"{name}-routes",
            script_job(
                service="edge",
                role="routes",
                image=self.image.image_id,
                script=ROUTES_SCRIPT,
                networks=[on_network(app_network)],
                env={"NEW_ROUTES_FILE": NEW_ROUTES_FILE, "ROUTES_DIR": ROUTES_DIR},
                files=[ConfigFile(NEW_ROUTES_FILE, routes)],
                volumes={ROUTES_DIR: self.routes_volume.name},
                memory_mb=64,
                run_timeout_seconds=60,
            ),
            # Created once every web container it names is healthy (the provider waits for that).
            pulumi.ResourceOptions(parent=self, depends_on=[*web, *canary]),
        )
        self.register_outputs({"container": self.container.name})
