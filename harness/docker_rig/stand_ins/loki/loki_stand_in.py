"""The Loki stand-in: `loki -config.file=PATH` (components/observability/logs.py).

It reads the config file (required; it must parse as YAML), listens on its
`server.http_listen_port`, needs its `common.path_prefix` directory writable (the /loki volume),
answers `/ready` with `ready` (the program's health check greps for it) and accepts pushes on
`/loki/api/v1/push` (204), counting their bytes at `/stand-in/pushes`. It stores and answers no
log query.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import yaml
from stand_in_service import (
    Request,
    Response,
    announce,
    http_server,
    log,
    require_directories,
    require_files,
    serve_until_stopped,
)

SERVICE = "loki"
KEEPS = "-config.file (YAML), /ready on server.http_listen_port, /loki/api/v1/push, path_prefix writable"


def main(arguments: list[str]) -> int:
    announce(SERVICE, KEEPS)
    configs = [a.split("=", 1)[1] for a in arguments if a.startswith(("-config.file=", "--config.file="))]
    if not configs:
        log(SERVICE, "error", "no -config.file given; not starting")
        return 1
    require_files(SERVICE, configs)
    try:
        config = yaml.safe_load(Path(configs[0]).read_text()) or {}
    except yaml.YAMLError as error:
        log(SERVICE, "error", f"{configs[0]} does not parse: {error}")
        return 1
    prefix = (config.get("common") or {}).get("path_prefix")
    if prefix:
        require_directories(SERVICE, [prefix], writable=True)
    pushes = {"requests": 0, "bytes": 0}
    lock = threading.Lock()

    def push(request: Request) -> Response:
        with lock:
            pushes["requests"] += 1
            pushes["bytes"] += len(request.body)
        return Response(204)

    port = int((config.get("server") or {}).get("http_listen_port", 3100))
    server = http_server(
        ("0.0.0.0", port),
        {
            ("GET", "/ready"): lambda _: Response.text(200, "ready\n"),
            ("POST", "/loki/api/v1/push"): push,
            ("GET", "/loki/api/v1/labels"): lambda _: Response.json(200, {"status": "success", "data": []}),
            ("GET", "/stand-in/pushes"): lambda _: Response.json(200, dict(pushes)),
        },
    )
    return serve_until_stopped(SERVICE, [server])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
