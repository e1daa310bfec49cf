"""The InfluxDB 2 stand-in: the official image's first-start setup and the HTTP API's few calls
the program and its clients make (components/data/influxdb.py).

- Setup (DOCKER_INFLUXDB_INIT_MODE=setup) on the first start only, when the data volume holds no
  setup yet: the username, org, bucket and retention from DOCKER_INFLUXDB_INIT_*, the password
  and operator token from the files their `_FILE` variables name (missing: no start, as the
  image's entrypoint). Later starts keep what the volume holds, as InfluxDB does.
- `/health` (the program's health check greps `"status": "pass"`), `/ping`.
- `/api/v2/write?org=&bucket=`: accepted (204) only with `Authorization: Token <operator token>`
  and the set-up org and bucket; the lines are counted, not stored; `/api/v2/buckets` lists the
  bucket for that token. A wrong token is 401, as InfluxDB answers.
It is not a database: it answers no query.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs

from stand_in_service import (
    Request,
    Response,
    announce,
    http_server,
    listen_address,
    log,
    require_directories,
    require_files,
    serve_until_stopped,
)

SERVICE = "influxdb"
DATA_DIR = Path("/var/lib/influxdb2")
SETUP_FILE = "stand-in-setup.json"
VERSION = "v2.7.11"
KEEPS = "first-start setup from DOCKER_INFLUXDB_INIT_*, /health, token-checked /api/v2/write on 8086"


def setup(data_dir: Path) -> dict[str, str]:
    record = data_dir / SETUP_FILE
    if record.exists():
        log(SERVICE, "info", "already set up: DOCKER_INFLUXDB_INIT_* ignored", file=str(record))
        return json.loads(record.read_text())
    if os.environ.get("DOCKER_INFLUXDB_INIT_MODE") != "setup":
        return {}
    files = [
        os.environ[name] for name in os.environ if name.startswith("DOCKER_INFLUXDB_INIT_") and name.endswith("_FILE")
    ]
    require_files(SERVICE, files)

    def value(name: str) -> str:
        file = os.environ.get(f"DOCKER_INFLUXDB_INIT_{name}_FILE")
        found = Path(file).read_text().strip() if file else os.environ.get(f"DOCKER_INFLUXDB_INIT_{name}", "")
        if not found:
            log(SERVICE, "error", f"DOCKER_INFLUXDB_INIT_{name} (or its _FILE) is not set; setup not possible")
            sys.exit(1)
        return found

    state = {
        "username": value("USERNAME"),
        "password": value("PASSWORD"),
        "org": value("ORG"),
        "bucket": value("BUCKET"),
        "retention": os.environ.get("DOCKER_INFLUXDB_INIT_RETENTION", "0s"),
        "token": value("ADMIN_TOKEN"),
    }
    scratch = record.with_name(SETUP_FILE + ".new")
    scratch.write_text(json.dumps(state))
    scratch.chmod(0o600)
    scratch.replace(record)
    log(SERVICE, "info", "set up", org=state["org"], bucket=state["bucket"], retention=state["retention"])
    return state


def main() -> int:
    announce(SERVICE, KEEPS)
    require_directories(SERVICE, [DATA_DIR], writable=True)
    state = setup(DATA_DIR)
    written = {"lines": 0, "requests": 0}
    lock = threading.Lock()

    def authorised(request: Request) -> bool:
        offered = request.headers.get("authorization", "")
        return bool(state) and hmac.compare_digest(offered.encode(), f"Token {state['token']}".encode())

    def write(request: Request) -> Response:
        if not authorised(request):
            return Response.json(401, {"code": "unauthorized", "message": "unauthorized access"})
        query = {key: values[0] for key, values in parse_qs(request.query).items()}
        if query.get("org") != state["org"] or query.get("bucket") != state["bucket"]:
            return Response.json(404, {"code": "not found", "message": f'bucket "{query.get("bucket")}" not found'})
        with lock:
            written["requests"] += 1
            written["lines"] += sum(1 for line in request.body.decode().splitlines() if line.strip())
        return Response(204)

    def buckets(request: Request) -> Response:
        if not authorised(request):
            return Response.json(401, {"code": "unauthorized", "message": "unauthorized access"})
        return Response.json(200, {"buckets": [{"name": state["bucket"], "retention": state["retention"]}]})

    health = {
        "name": "influxdb",
        "message": "ready for queries and writes",
        "status": "pass",
        "checks": [],
        "version": VERSION,
        "commit": "audit-x-rig-stand-in",
    }
    address = listen_address(os.environ.get("INFLUXD_HTTP_BIND_ADDRESS", ":8086"), 8086)
    server = http_server(
        (address[0] or "0.0.0.0", address[1]),
        {
            ("GET", "/health"): lambda _: Response.json(200, health),
            ("GET", "/ping"): lambda _: Response(204, headers={"X-Influxdb-Version": VERSION}),
            ("POST", "/api/v2/write"): write,
            ("GET", "/api/v2/buckets"): buckets,
            ("GET", "/api/v2/setup"): lambda _: Response.json(200, {"allowed": not state}),
            ("GET", "/stand-in/writes"): lambda _: Response.json(200, dict(written)),
        },
    )
    return serve_until_stopped(SERVICE, [server])


if __name__ == "__main__":
    sys.exit(main())
