"""The Redpanda stand-in: `redpanda start ...` and the two `rpk` commands the program runs.

What it keeps (components/data/redpanda.py):
- the Kafka API on --kafka-addr's port (9092), answering ApiVersions (kafka_api.py), the RPC port
  (--rpc-addr, 33145) open, the admin API on 9644;
- `rpk cluster health` printing `Healthy: true` while the broker's admin API answers (the
  program's health check greps for it), failing when it does not;
- the cluster properties: on the first start, those of /etc/redpanda/.bootstrap.yaml (read once,
  at cluster creation, as Redpanda does); `rpk cluster config set NAME VALUE -X admin.hosts=H`
  (the lag-metrics job) sets one in the running broker; both kept on the data volume, which
  must be writable; the admin API shows them (GET /v1/cluster_config);
- /public_metrics with `redpanda_kafka_consumer_group_lag_max` only once
  `enable_consumer_group_metrics` holds `consumer_lag` (what the collector scrapes).
It is not a broker: it stores no messages.
"""

from __future__ import annotations

import json
import socketserver
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from kafka_api import KafkaServer
from stand_in_service import (
    Request,
    Response,
    announce,
    http_server,
    listen_address,
    log,
    require_directories,
    serve_until_stopped,
)

SERVICE = "redpanda"
DATA_DIR = Path("/var/lib/redpanda/data")
BOOTSTRAP_FILE = Path("/etc/redpanda/.bootstrap.yaml")
ADMIN_PORT = 9644
CONFIG_FILE = "stand-in-cluster-config.json"
KEEPS = "Kafka API (ApiVersions) on 9092, admin API on 9644, `rpk cluster health`, cluster properties"


def flag(arguments: list[str], name: str, default: str) -> str:
    for argument in arguments:
        if argument.startswith(f"--{name}="):
            return argument.split("=", 1)[1]
    return default


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.file = data_dir / CONFIG_FILE
        if self.file.exists():
            state = json.loads(self.file.read_text())
        else:
            bootstrap = yaml.safe_load(BOOTSTRAP_FILE.read_text()) if BOOTSTRAP_FILE.exists() else {}
            state = {"version": 1, "properties": bootstrap or {}}
            log(SERVICE, "info", "cluster created", bootstrap=str(BOOTSTRAP_FILE), properties=state["properties"])
        self.state = state
        self._save()

    def _save(self) -> None:
        scratch = self.file.with_name(self.file.name + ".new")
        scratch.write_text(json.dumps(self.state))
        scratch.replace(self.file)

    def upsert(self, properties: dict[str, object]) -> int:
        self.state["properties"].update(properties)
        self.state["version"] += 1
        self._save()
        return self.state["version"]

    def metrics(self) -> str:
        lines = [
            "# TYPE redpanda_application_uptime_seconds_total gauge",
            "redpanda_application_uptime_seconds_total 1",
        ]
        if "consumer_lag" in (self.state["properties"].get("enable_consumer_group_metrics") or []):
            lines += [
                "# TYPE redpanda_kafka_consumer_group_lag_max gauge",
                'redpanda_kafka_consumer_group_lag_max{redpanda_group="audit-x-stand-in"} 0',
            ]
        return "\n".join(lines) + "\n"


def start(arguments: list[str]) -> int:
    announce(SERVICE, KEEPS)
    require_directories(SERVICE, [DATA_DIR], writable=True)
    cluster = Cluster(DATA_DIR)

    def config_put(request: Request) -> Response:
        change = json.loads(request.body or b"{}")
        return Response.json(200, {"config_version": cluster.upsert(change.get("upsert", {}))})

    health = {
        "is_healthy": True,
        "unhealthy_reasons": [],
        "controller_id": 0,
        "all_nodes": [0],
        "nodes_down": [],
        "leaderless_partitions": [],
        "under_replicated_partitions": [],
    }
    admin = http_server(
        ("0.0.0.0", ADMIN_PORT),
        {
            ("GET", "/v1/status/ready"): lambda _: Response.json(200, {"status": "ready"}),
            ("GET", "/v1/cluster/health_overview"): lambda _: Response.json(200, health),
            ("GET", "/v1/cluster_config"): lambda _: Response.json(200, cluster.state["properties"]),
            ("PUT", "/v1/cluster_config"): config_put,
            ("GET", "/public_metrics"): lambda _: Response.text(200, cluster.metrics()),
        },
    )
    kafka = KafkaServer(listen_address(flag(arguments, "kafka-addr", "0.0.0.0:9092"), 9092))
    rpc = socketserver.TCPServer(listen_address(flag(arguments, "rpc-addr", "0.0.0.0:33145"), 33145), _Closing)
    return serve_until_stopped(SERVICE, [admin, kafka, rpc])


class _Closing(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        pass  # the RPC port is another broker's: open, and nothing said on it


def admin_url(arguments: list[str], path: str) -> str:
    host = "127.0.0.1:9644"
    for index, argument in enumerate(arguments):
        if argument == "-X" and index + 1 < len(arguments) and arguments[index + 1].startswith("admin.hosts="):
            host = arguments[index + 1].split("=", 1)[1].split(",")[0]
    return f"http://{host}{path}"


def rpk(arguments: list[str]) -> int:
    positional = [a for i, a in enumerate(arguments) if not a.startswith("-") and (i == 0 or arguments[i - 1] != "-X")]
    try:
        if positional[:2] == ["cluster", "health"]:
            with urllib.request.urlopen(admin_url(arguments, "/v1/cluster/health_overview"), timeout=5) as answer:
                health = json.load(answer)
            print("CLUSTER HEALTH OVERVIEW\n=======================")
            print(f"Healthy:                          {str(health['is_healthy']).lower()}")
            print(f"Unhealthy reasons:                {health['unhealthy_reasons']}")
            print(f"Controller ID:                    {health['controller_id']}")
            print(f"All nodes:                        {health['all_nodes']}")
            print(f"Nodes down:                       {health['nodes_down']}")
            return 0
        if positional[:3] == ["cluster", "config", "set"] and len(positional) == 5:
            name, value = positional[3], yaml.safe_load(positional[4])
            body = json.dumps({"upsert": {name: value}, "remove": []}).encode()
            request = urllib.request.Request(admin_url(arguments, "/v1/cluster_config"), body, method="PUT")
            with urllib.request.urlopen(request, timeout=5) as answer:
                version = json.load(answer)["config_version"]
            print(f"Successfully updated configuration. New configuration version is {version}.")
            return 0
    except (OSError, urllib.error.URLError) as error:
        print(f"unable to reach the admin API: {error}", file=sys.stderr)
        return 1
    print(f"rpk stand-in: {' '.join(arguments)!r} is not one of the commands the program runs", file=sys.stderr)
    return 1


def main(arguments: list[str]) -> int:
    """`rpk redpanda start ...` (the image's entrypoint runs rpk with the command, as Redpanda's
    does), or `rpk cluster ...`."""
    if arguments[:2] == ["redpanda", "start"]:
        return start(arguments[2:])
    return rpk(arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
