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


def dynamic_config(
    settings: EdgeSettings, *, domain: str, web_servers: list[str], web_port: int, grafana_host: str
) -> dict[str, Any]:
    middlewares = ["rate-limit", "security-headers", "retry"]
    tls = {"certResolver": "letsencrypt"}
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
                "web": {
                    "loadBalancer": {
                        "servers": [{"url": f"http://{server}:{web_port}"} for server in web_servers],
                        "healthCheck": {"path": READY_PATH, "interval": "5s", "timeout": "3s"},
                        "passHostHeader": True,
                    }
                },
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
        routes = pulumi.Output.all(*[container.name for container in web]).apply(
            lambda servers: yaml.safe_dump(
                dynamic_config(
                    settings, domain=domain, web_servers=list(servers), web_port=web_port, grafana_host=grafana_host
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
            pulumi.ResourceOptions(parent=self, depends_on=list(web)),
        )
        self.register_outputs({"container": self.container.name})
