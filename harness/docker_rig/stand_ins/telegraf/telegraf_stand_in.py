"""The Telegraf stand-in: `telegraf --config PATH` (components/observability/collector.py).

It reads the config (TOML; required), and refuses to start, naming the file, when a file it
names is not readable by its user: each `@{STORE:KEY}` of a `docker` secret store (read from
/run/secrets/KEY, as Telegraf's docker secret store does) and each `shared_credential_file`.
Of the inputs it runs one, for real: `inputs.docker`, asking the endpoint it names (the Docker API
proxy) for `/info` and `/containers/json` every agent interval. `outputs.health` answers on its
`service_address` (the program's health check): 200 while the last such read succeeded within
`max_time_between_metrics`, 503 otherwise, as Telegraf's health output does for its `contains`
check. It writes nothing to InfluxDB or CloudWatch.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

from stand_in_service import (
    Response,
    announce,
    http_server,
    listen_address,
    log,
    require_files,
    serve_until_stopped,
)

SERVICE = "telegraf"
SECRET_REFERENCE = re.compile(r"@\{([\w-]+):([\w.-]+)\}")
KEEPS = "--config (TOML), its secret and credential files, inputs.docker read for real, outputs.health"


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match[1]) * units[match[2]]


def files_named(config: dict, text: str) -> list[str]:
    stores = {store["id"] for store in config.get("secretstores", {}).get("docker", [])}
    secrets = [f"/run/secrets/{key}" for store, key in SECRET_REFERENCE.findall(text) if store in stores]
    credentials = [
        output["shared_credential_file"]
        for outputs in config.get("outputs", {}).values()
        for output in outputs
        if "shared_credential_file" in output
    ]
    return secrets + credentials


class DockerInput:
    """inputs.docker, reduced to the reads that tell whether the Docker API can be read."""

    def __init__(self, endpoint: str) -> None:
        self.base = endpoint.replace("tcp://", "http://", 1)
        self.last_success: float | None = None
        self.containers = 0
        self.last_error: str | None = None

    def gather(self) -> None:
        try:
            for path in ("/info", "/containers/json?all=1"):
                with urllib.request.urlopen(self.base + path, timeout=5) as answer:
                    document = json.load(answer)
            self.containers = len(document)
            self.last_success = time.monotonic()
            self.last_error = None
        except (OSError, ValueError) as error:
            if self.last_error is None:
                log(SERVICE, "error", f"inputs.docker: {error}", endpoint=self.base)
            self.last_error = str(error)


def main(arguments: list[str]) -> int:
    announce(SERVICE, KEEPS)
    if "--config" not in arguments or arguments.index("--config") + 1 >= len(arguments):
        log(SERVICE, "error", "no --config given; not starting")
        return 1
    path = arguments[arguments.index("--config") + 1]
    require_files(SERVICE, [path])
    text = Path(path).read_text()
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        log(SERVICE, "error", f"{path} does not parse: {error}")
        return 1
    require_files(SERVICE, files_named(config, text))
    interval = seconds(config.get("agent", {}).get("interval", "10s"))
    dockers = [DockerInput(docker["endpoint"]) for docker in config.get("inputs", {}).get("docker", [])]
    stopped = threading.Event()

    def gather() -> None:
        while not stopped.is_set():
            for docker in dockers:
                docker.gather()
            stopped.wait(interval)

    threading.Thread(target=gather, daemon=True).start()
    servers = []
    for health in config.get("outputs", {}).get("health", []):
        limit = seconds(health.get("max_time_between_metrics", "0s"))

        def answer(_request: object, limit: float = limit) -> Response:
            fresh = all(
                d.last_success is not None and (not limit or time.monotonic() - d.last_success <= limit)
                for d in dockers
            )
            return Response.text(200 if fresh else 503, "OK" if fresh else "not healthy")

        host, port = listen_address(health.get("service_address", "http://:8080"), 8080)
        servers.append(http_server((host or "0.0.0.0", port), {("GET", "/"): answer}))
    try:
        return serve_until_stopped(SERVICE, servers)
    finally:
        stopped.set()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
