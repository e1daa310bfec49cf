"""Assertions and look-ups on a plan, written once for every test module."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pulumi_docker as docker

from components.lib.context import EnvironmentContext
from components.settings import LogRotationSettings
from tools.mock_engine import DeclaredResource, Plan, mock_image_id

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
SECRET = "aws:secretsmanager/secret:Secret"
DATA_SERVICES = ("postgres", "redis", "redpanda", "influxdb")


def env_name(plan: Plan) -> str:
    return plan.outputs["environment"]


def container(plan: Plan, *parts: str) -> DeclaredResource:
    """`container(plan, "postgres")` -> the container `audit-x-<env>-postgres`."""
    name = "-".join(["audit-x", env_name(plan), *parts])
    matches = [c for c in containers(plan) if c.name == name]
    assert len(matches) == 1, f"{len(matches)} containers named {name}"
    return matches[0]


def containers(plan: Plan) -> list[DeclaredResource]:
    return plan.of_type(CONTAINER)


def long_running(plan: Plan) -> list[DeclaredResource]:
    return [c for c in containers(plan) if not c.inputs.get("attach")]


def labels(resource: DeclaredResource) -> dict[str, str]:
    return {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}


def env(resource: DeclaredResource, *, plain: bool = False) -> dict[str, str]:
    """A container's environment; masked values read `[secret]` unless `plain`."""
    entries = (resource.plain_inputs if plain else resource.inputs).get("envs", [])
    return dict(entry.split("=", 1) for entry in entries)


def network_names(resource: DeclaredResource) -> list[str]:
    return [n["name"] for n in resource.inputs.get("networksAdvanced", [])]


def image_reference(plan: Plan, resource: DeclaredResource) -> str:
    """The pinned reference a container runs: a pulled image's reference, or a built image's name."""
    built = {img.inputs["imageName"] for img in plan.of_type(BUILT_IMAGE)}
    if resource.inputs["image"] in built:
        return resource.inputs["image"]
    images = {img.plain_inputs["name"]: img for img in plan.of_type(IMAGE)}
    matches = [ref for ref in images if mock_image_id(ref) == resource.inputs["image"]]
    assert len(matches) == 1, f"{resource.name} runs an image the plan did not pull: {resource.inputs['image']}"
    return matches[0]


def healthcheck_command(resource: DeclaredResource) -> str:
    check: dict[str, Any] = resource.inputs["healthcheck"]
    assert check["tests"][0] == "CMD-SHELL"
    return check["tests"][1]


def run_probe(command: str, environment: dict[str, str]) -> int:
    """Run a health-check command as Docker would (`/bin/sh -c`), with the container's env."""
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode


def redis_config(plan: Plan, tmp_path: Path, port: int) -> Path:
    """The rendered redis.conf, with the container's paths and port mapped here; it includes the
    users file that `run_redis_password_job` writes."""
    redis = container(plan, "redis")
    uploads = {u["file"]: u["content"] for u in redis.plain_inputs["uploads"]}
    config = (
        uploads["/usr/local/etc/redis/redis.conf"]
        .replace("bind 0.0.0.0", "bind 127.0.0.1")
        .replace("port 6379", f"port {port}")
        .replace("dir /data", f"dir {tmp_path}")
        .replace("include /var/lib/audit-x-credentials/users.conf", f"include {tmp_path / 'users.conf'}")
    )
    config_file = tmp_path / "redis.conf"
    config_file.write_text(config)
    return config_file


def run_redis_password_job(
    plan: Plan, tmp_path: Path, port: int, password_a: str, password_b: str
) -> subprocess.CompletedProcess[str]:
    """Run the Redis password job's script verbatim, with its files and the server mapped here."""
    job = container(plan, "redis-password")
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "password-a").write_text(password_a)
    (secrets / "password-b").write_text(password_b)
    job_env = env(job) | {
        "SECRETS_DIR": str(secrets),
        "USERS_FILE": str(tmp_path / "users.conf"),
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(port),
        "REDIS_UID": str(os.getuid()),
    }
    return subprocess.run(
        ["/bin/sh", "-c", job.inputs["command"][0]],
        env={"PATH": os.environ["PATH"], **job_env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def uploaded(resource: DeclaredResource, path: str) -> str:
    """The content of a file the program writes into a container (masked if it is a secret)."""
    files = {u["file"]: u["content"] for u in resource.inputs.get("uploads", [])}
    assert path in files, f"{resource.name} has no {path}: {sorted(files)}"
    return files[path]


def seconds(duration: str) -> int:
    """`"90s"` -> 90, `"2m"` -> 120, `"4h"` -> 14400: the durations Docker and Grafana are given."""
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def component_context(environment: str = "test") -> EnvironmentContext:
    """The context a component gets when a test builds it alone (tools.mock_engine.run_component)."""
    return EnvironmentContext(environment=environment, protect_stateful=False, log_rotation=LogRotationSettings())


def data_network(ctx: EnvironmentContext) -> docker.Network:
    """A network for a component built alone to join."""
    return docker.Network(ctx.name("data"), name=ctx.name("data"), internal=True)
