"""The Grafana stand-in: the server's start (its `__FILE` variables, provisioning, the admin user)
and the CLI's `admin reset-admin-password` (components/observability/grafana.py).

- Every `GF_<SECTION>_<KEY>__FILE` variable must name a readable file, or the server does not
  start (Grafana reads them before anything else).
- Provisioning: every YAML file under /etc/grafana/provisioning/{datasources,alerting,dashboards}
  must parse; every `$__file{PATH}` in them must be readable; each dashboards provider's
  `options.path` must hold dashboards that parse as JSON. Any failure stops the start, as
  Grafana's provisioning does. What was provisioned is listed at /api/datasources,
  /api/v1/provisioning/alert-rules and /api/search (admin only).
- The admin user: created in the database (grafana.db under GF_PATHS_DATA, here a JSON file) on
  the first start only, with GF_SECURITY_ADMIN_PASSWORD__FILE's password; later starts keep the
  database's. `grafana cli ... admin reset-admin-password --password-from-stdin` changes it in
  the database, and the running server checks Basic auth against the database on each request
  (`/api/user`): a rotation takes effect without a restart, as with Grafana.
- `/api/health` with `"database": "ok"` (the program's health check).
It renders nothing and evaluates no alert.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from pathlib import Path

import yaml
from stand_in_service import (
    Request,
    Response,
    Route,
    announce,
    http_server,
    log,
    require_directories,
    require_files,
    serve_until_stopped,
)

SERVICE = "grafana"
VERSION = "11.6.0"
PROVISIONING = Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
FILE_REFERENCE = re.compile(r"\$__file\{([^}]+)\}")
KEEPS = "GF_*__FILE files, provisioning files, the admin password in its database, /api/health on 3000"


def data_dir() -> Path:
    return Path(os.environ.get("GF_PATHS_DATA", "/var/lib/grafana"))


def database_file() -> Path:
    return data_dir() / "grafana.db"


def password_hash(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10000).hex()


def store_admin(user: str, password: str) -> None:
    salt = secrets.token_hex(8)
    record = {"admin_user": user, "salt": salt, "password_hash": password_hash(password, salt)}
    scratch = database_file().with_name("grafana.db.new")
    scratch.write_text(json.dumps(record))
    scratch.chmod(0o600)
    scratch.replace(database_file())


def admin_matches(user: str, password: str) -> bool:
    record = json.loads(database_file().read_text())
    return record["admin_user"] == user and hmac.compare_digest(
        record["password_hash"], password_hash(password, record["salt"])
    )


def fail(message: str) -> None:
    log(SERVICE, "error", f"Failed to start grafana: {message}")
    sys.exit(1)


def provisioned() -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {"datasources": [], "alert_rules": [], "dashboards": []}
    for kind in ("datasources", "alerting", "dashboards"):
        for path in sorted((PROVISIONING / kind).glob("*.y*ml")):
            text = path.read_text()
            require_files(SERVICE, FILE_REFERENCE.findall(text))
            try:
                document = yaml.safe_load(text) or {}
            except yaml.YAMLError as error:
                fail(f"{kind} provisioning: {path} does not parse: {error}")
                raise  # fail() exits; for the type checker
            if kind == "datasources":
                found["datasources"] += [{"name": d["name"], "uid": d.get("uid", "")} for d in document["datasources"]]
            elif kind == "alerting":
                for group in document.get("groups", []):
                    found["alert_rules"] += [{"uid": r["uid"], "title": r["title"]} for r in group["rules"]]
            else:
                for provider in document.get("providers", []):
                    found["dashboards"] += dashboards_in(Path(provider["options"]["path"]))
    return found


def dashboards_in(directory: Path) -> list[dict[str, str]]:
    if not directory.is_dir():
        fail(f"dashboards provisioning: {directory} is not a directory")
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            fail(f"dashboards provisioning: {path} is not JSON: {error}")
            raise
        found.append({"uid": dashboard["uid"], "title": dashboard["title"]})
    return found


def file_variables() -> dict[str, str]:
    """GF_*__FILE -> the file's content, each one required."""
    names = sorted(name for name in os.environ if name.startswith("GF_") and name.endswith("__FILE"))
    require_files(SERVICE, [os.environ[name] for name in names])
    return {name[: -len("__FILE")]: Path(os.environ[name]).read_text().strip() for name in names}


def server() -> int:
    announce(SERVICE, KEEPS)
    values = file_variables()
    require_directories(SERVICE, [data_dir()], writable=True)
    user = os.environ.get("GF_SECURITY_ADMIN_USER", "admin")
    if not database_file().exists():
        store_admin(
            user, values.get("GF_SECURITY_ADMIN_PASSWORD") or os.environ.get("GF_SECURITY_ADMIN_PASSWORD", "admin")
        )
        log(SERVICE, "info", "database created, admin user set from the password file")
    found = provisioned()
    log(SERVICE, "info", "provisioned", **{kind: len(items) for kind, items in found.items()})

    def admin_only(answer: object) -> Route:
        def route(request: Request) -> Response:
            scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "basic":
                login, _, password = base64.b64decode(encoded).decode(errors="replace").partition(":")
                if admin_matches(login, password):
                    return Response.json(200, answer)
            return Response.json(401, {"message": "invalid username or password"})

        return route

    health = {"commit": "audit-x-rig-stand-in", "database": "ok", "version": VERSION}
    port = int(os.environ.get("GF_SERVER_HTTP_PORT", "3000"))
    http = http_server(
        ("0.0.0.0", port),
        {
            ("GET", "/api/health"): lambda _: Response.json(200, health),
            ("GET", "/api/user"): admin_only({"login": user, "isGrafanaAdmin": True}),
            ("GET", "/api/datasources"): admin_only(found["datasources"]),
            ("GET", "/api/v1/provisioning/alert-rules"): admin_only(found["alert_rules"]),
            ("GET", "/api/search"): admin_only(found["dashboards"]),
        },
    )
    return serve_until_stopped(SERVICE, [http])


def cli(arguments: list[str]) -> int:
    """`grafana cli [--homepath H] [--config C] admin reset-admin-password --password-from-stdin`."""
    words, flags, paths = [], set(), []
    given = iter(arguments)
    for argument in given:
        if argument in ("--homepath", "--config"):
            paths.append(next(given, ""))
        elif argument.startswith("--"):
            flags.add(argument[2:])
        else:
            words.append(argument)
    if words != ["admin", "reset-admin-password"] or "password-from-stdin" not in flags:
        print(
            f"grafana cli stand-in: only admin reset-admin-password --password-from-stdin (got {arguments})",
            file=sys.stderr,
        )
        return 1
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        print(f"{missing[0]} does not exist", file=sys.stderr)
        return 1
    if not database_file().exists():
        print(f"no database at {database_file()}", file=sys.stderr)
        return 1
    password = sys.stdin.read().strip()
    if not password:
        print("no password on stdin", file=sys.stderr)
        return 1
    record = json.loads(database_file().read_text())
    store_admin(record["admin_user"], password)
    print("Admin password changed successfully ✔")
    return 0


def main(arguments: list[str]) -> int:
    if arguments[:1] == ["cli"]:
        return cli(arguments[1:])
    if arguments[:1] in (["server"], []):
        return server()
    print(f"grafana stand-in: `grafana server` or `grafana cli ...` (got {arguments})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
