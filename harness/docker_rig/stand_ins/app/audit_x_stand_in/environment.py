"""What the app process is given (docs/app-contract.md, "Environment and secrets every role is
given"), read once at start: a missing variable stops the stand-in, naming it, so a rig test sees
the program's wiring break where the Rails app would only misbehave later."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import postgres_wire, redis_resp

# Every role gets these (the contract's table, less the Sentry ones, which are optional).
COMMON = (
    "DATABASE_URL",
    "REDIS_URL",
    "DATABASE_PASSWORD",
    "REDIS_PASSWORD",
    "KAFKA_BROKERS",
    "INFLUXDB_URL",
    "INFLUXDB_ORG",
    "INFLUXDB_BUCKET",
    "INFLUXDB_TOKEN",
    "SECRET_KEY_BASE",
    "RAILS_ENV",
    "RACK_ENV",
    "RAILS_MAX_THREADS",
    "RAILS_LOG_TO_STDOUT",
    "LOG_FORMAT",
    "RAILS_LOG_LEVEL",
    "AUDIT_X_ENVIRONMENT",
    "APP_ROLE",
    "APP_RELEASE",
)
SENTRY = ("SENTRY_DSN", "SENTRY_ENVIRONMENT", "SENTRY_RELEASE")
WEB_ONLY = ("PORT",)
WORKER_ONLY = ("HEARTBEAT_FILE",)
# Values shown only as their length on the stand-in's endpoints.
SECRET_NAMES = frozenset({"DATABASE_PASSWORD", "REDIS_PASSWORD", "INFLUXDB_TOKEN", "SECRET_KEY_BASE", "SENTRY_DSN"})
# The files the connection checks read their passwords from, on every attempt.
PASSWORD_FILES = {"postgres": "DATABASE_PASSWORD_FILE", "redis": "REDIS_PASSWORD_FILE"}


class ContractError(Exception):
    """The process was not given what the contract promises; the message names what is wrong."""


def require(names: tuple[str, ...]) -> None:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise ContractError(f"not set: {', '.join(missing)} (docs/app-contract.md says every such role gets them)")


def check_contract(role_kind: str) -> None:
    """Every variable the role is promised is there, and the launcher put the passwords into the URLs."""
    require(COMMON + (WEB_ONLY if role_kind == "web" else WORKER_ONLY if role_kind == "worker" else ()))
    require(tuple(PASSWORD_FILES.values()))
    for url_name, password_name in (("DATABASE_URL", "DATABASE_PASSWORD"), ("REDIS_URL", "REDIS_PASSWORD")):
        password = urlsplit(os.environ[url_name]).password
        if password is None or unquote(password) != os.environ[password_name]:
            raise ContractError(f"{url_name} does not hold {password_name}: the launcher did not complete it")


def masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:[secret]@{host}").geturl()


def shown_environment() -> dict[str, str]:
    """The contract's variables as the process sees them, secrets as their length alone."""
    shown = {}
    for name in (*COMMON, *SENTRY, *WEB_ONLY, *WORKER_ONLY):
        value = os.environ.get(name)
        if value is None:
            continue
        if name in SECRET_NAMES:
            shown[name] = f"[secret: {len(value)} characters]"
        elif name.endswith("_URL"):
            shown[name] = masked(value)
        else:
            shown[name] = value
    return shown


def read_password(service: str) -> str:
    return Path(os.environ[PASSWORD_FILES[service]]).read_text().strip()


@dataclass(frozen=True)
class Endpoints:
    """Where the app's dependencies are, from its URLs (the passwords apart)."""

    postgres: postgres_wire.Credentials
    redis: redis_resp.Credentials
    kafka: list[tuple[str, int]]


def _host_port(netloc: str, default_port: int) -> tuple[str, int]:
    host, _, port = netloc.rpartition("@")[2].partition(":")
    return host, int(port) if port else default_port


def endpoints_from_urls() -> Endpoints:
    """The dependencies as the Rails app reaches them: DATABASE_URL, REDIS_URL (with their
    passwords, as the launcher completed them) and KAFKA_BROKERS."""
    database = urlsplit(os.environ["DATABASE_URL"])
    redis = urlsplit(os.environ["REDIS_URL"])
    pg_host, pg_port = _host_port(database.netloc, 5432)
    redis_host, redis_port = _host_port(redis.netloc, 6379)
    return Endpoints(
        postgres=postgres_wire.Credentials(
            host=pg_host,
            port=pg_port,
            user=unquote(database.username or ""),
            password=unquote(database.password or ""),
            database=database.path.lstrip("/"),
        ),
        redis=redis_resp.Credentials(
            host=redis_host,
            port=redis_port,
            password=unquote(redis.password or ""),
            user=unquote(redis.username or ""),
            database=int(redis.path.lstrip("/") or 0),
        ),
        kafka=[_host_port(broker.strip(), 9092) for broker in os.environ["KAFKA_BROKERS"].split(",")],
    )
