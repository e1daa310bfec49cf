"""Assertions and look-ups on a plan, written once for every test module."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import yaml

from components.data.influxdb import InfluxDbEndpoint
from components.data.postgres import DatabaseEndpoint
from components.lib import tokens
from components.lib.context import EnvironmentContext
from components.lib.tokens import labels_of
from components.platform.edge import NEW_ROUTES_FILE
from components.platform.network import Networks
from components.platform.secrets import Secrets
from components.settings import LogRotationSettings, ProvidedSecrets, Settings, load_settings
from harness import telegraf_catalogue
from harness.mock_engine import REPO_ROOT, DeclaredResource, Plan, fake_secret, load_stack_config, mock_image_id
from runner.metrics import RunOutcome, archiving_line, rows_lines, seed_age_line
from runner.pitr import ArchiverStatus

DATA_SERVICES = ("postgres", "redis", "redpanda", "influxdb")
FLUX_CHECK = REPO_ROOT / "harness" / "flux" / "check.js"


def env_name(plan: Plan) -> str:
    return plan.outputs["environment"]


def container(plan: Plan, *parts: str) -> DeclaredResource:
    """`container(plan, "postgres")` -> the container `audit-x-<env>-postgres`."""
    name = "-".join(["audit-x", env_name(plan), *parts])
    matches = [c for c in containers(plan) if c.name == name]
    assert len(matches) == 1, f"{len(matches)} containers named {name}"
    return matches[0]


def containers(plan: Plan) -> list[DeclaredResource]:
    return plan.of_type(tokens.CONTAINER)


def long_running(plan: Plan) -> list[DeclaredResource]:
    return [c for c in containers(plan) if not c.inputs.get("attach")]


def labels(resource: DeclaredResource) -> dict[str, str]:
    return labels_of(resource.inputs)


def env(resource: DeclaredResource, *, plain: bool = False) -> dict[str, str]:
    """A container's environment; masked values read `[secret]` unless `plain`."""
    entries = (resource.plain_inputs if plain else resource.inputs).get("envs", [])
    return dict(entry.split("=", 1) for entry in entries)


def network_names(resource: DeclaredResource) -> list[str]:
    return [n["name"] for n in resource.inputs.get("networksAdvanced", [])]


def image_reference(plan: Plan, resource: DeclaredResource) -> str:
    """The pinned reference a container runs: a pulled image's reference, or a built image's name."""
    built = {img.inputs["imageName"] for img in plan.of_type(tokens.BUILT_IMAGE)}
    if resource.inputs["image"] in built:
        return resource.inputs["image"]
    images = {img.plain_inputs["name"]: img for img in plan.of_type(tokens.REMOTE_IMAGE)}
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
    plan: Plan, tmp_path: Path, port: int, passwords: dict[str, str], job_name: str = "redis-password"
) -> subprocess.CompletedProcess[str]:
    """Run a Redis password job's script verbatim (`redis-password`, or `redis-password-retire`),
    with the password files of `passwords` (slot -> password) and the server mapped here."""
    job = container(plan, job_name)
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    for slot in ("a", "b"):
        (secrets / f"password-{slot}").unlink(missing_ok=True)
        if slot in passwords:
            (secrets / f"password-{slot}").write_text(passwords[slot])
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


# --- components built alone (harness.mock_engine.run_component) -----------------------------------
# Small stand-ins for what a component gets from the others; each is declared inside the `build`
# a test hands to run_component (an Output needs the run's event loop).


def component_context(environment: str = "test", *, protect_stateful: bool = False) -> EnvironmentContext:
    """The context a component gets when a test builds it alone (harness.mock_engine.run_component)."""
    return EnvironmentContext(
        environment=environment, protect_stateful=protect_stateful, log_rotation=LogRotationSettings()
    )


def data_network(ctx: EnvironmentContext) -> docker.Network:
    """A network for a component built alone to join."""
    return docker.Network(ctx.name("data"), name=ctx.name("data"), internal=True)


def networks(ctx: EnvironmentContext) -> Networks:
    """The environment's two networks, `audit-x-<env>-data` and `audit-x-<env>-app`."""
    return Networks(ctx.name("networks"), ctx=ctx)


def secrets(ctx: EnvironmentContext, provided: ProvidedSecrets | None = None) -> Secrets:
    """The environment's secrets, nothing provided unless given. The mocks make up every generated
    value, traceably: `generated(ctx, "pgbackrest-cipher-pass")` is the one a component gets."""
    return Secrets(
        ctx.name("secrets"),
        provided or ProvidedSecrets(),
        ctx=ctx,
        rotation={},
        recovery_window_days=7,
        kms_deletion_window_days=7,
    )


def generated(ctx: EnvironmentContext, name: str) -> str:
    """The value the mocks give the generated secret `name` of `secrets(ctx)`: one kept by its
    rotation marker, not yet rotated (not a credential used in turn, which a generation keeps)."""
    return fake_secret(ctx.name(name))


def kms_key(ctx: EnvironmentContext) -> aws.kms.Key:
    """A KMS key of the environment's, `audit-x-<env>-kms` (ARN: mock_kms_key_arn of that name)."""
    return aws.kms.Key(ctx.name("kms"), description="a key for a component built alone")


def s3_bucket(ctx: EnvironmentContext, bucket_name: str) -> aws.s3.Bucket:
    """A bucket named `bucket_name` (ARN `arn:aws:s3:::<bucket_name>`)."""
    return aws.s3.Bucket(ctx.name("bucket"), bucket=bucket_name)


def influxdb_endpoint(token: str = "influxdb-token-value") -> InfluxDbEndpoint:
    """A metrics store somewhere, with a secret token."""
    return InfluxDbEndpoint(
        url="http://metrics.test:8086", org="test-org", bucket="test-metrics", token=pulumi.Output.secret(token)
    )


def database_endpoint(password: str = "database-password-value") -> DatabaseEndpoint:
    """A database somewhere, as the app's login reaches it, with a secret password."""
    return DatabaseEndpoint(
        host="db.test", port=6543, database="audit_x_test", login="audit_x_b", password=pulumi.Output.secret(password)
    )


def children(plan: Plan, parent: str, of: str | None = None) -> list[tuple[str, str]]:
    """(type, name) of every resource `parent` declared itself, sorted; `of`, the parent's type,
    tells it from a child of the same name (a component and the identity it names after itself)."""
    return sorted(
        (r.type, r.name)
        for r in plan.resources
        if r.parent == parent and (of is None or (r.parent_urn or "").endswith(f"{of}::{parent}"))
    )


def declared(plan: Plan, type_: str, name: str) -> DeclaredResource:
    """The one resource of `type_` named `name` (names repeat across types: a network and a container)."""
    matches = [r for r in plan.of_type(type_) if r.name == name]
    assert len(matches) == 1, f"{len(matches)} {type_} named {name}"
    return matches[0]


def upload(resource: DeclaredResource, path: str, *, plain: bool = False) -> dict[str, Any]:
    """A file written into a container: content (masked unless `plain`), permissions, owner, group."""
    files = {u["file"]: u for u in (resource.plain_inputs if plain else resource.inputs).get("uploads") or []}
    assert path in files, f"{resource.name} has no {path}: {sorted(files)}"
    return files[path]


def clashes(plan: Plan) -> list[str]:
    """What two components side by side would fight over: a URN, the name of a Docker object or an
    AWS resource of one type (the mock engine refuses neither, the real ones do), or an alias on
    one network (Docker takes it, and answers with either container)."""
    seen: dict[str, int] = {}
    for r in plan.resources:
        found = [f"urn {r.urn}"]
        name = r.plain_inputs.get("name")
        if isinstance(name, str) and r.type != tokens.REMOTE_IMAGE:  # two pulls of one image are one image
            found.append(f"{r.type} {name}")
        for network in r.plain_inputs.get("networksAdvanced", []) if r.type == tokens.CONTAINER else []:
            found += [f"alias {alias} on {network['name']}" for alias in network.get("aliases", [])]
        for key in found:
            seen[key] = seen.get(key, 0) + 1
    return sorted(key for key, count in seen.items() if count > 1)


def volumes(resource: DeclaredResource) -> dict[str, str]:
    """A container's named volumes, by the path they are mounted at."""
    return {v["containerPath"]: v["volumeName"] for v in resource.inputs.get("volumes") or [] if "volumeName" in v}


# --- metrics and queries -----------------------------------------------------------------------


def settings_of(stack: str, secrets: dict[str, str] | None = None) -> Settings:
    return load_settings({**load_stack_config(stack), **(secrets or {})}, frozenset(secrets or {}))


def flux_valid(scripts: list[str]) -> list[bool]:
    """InfluxData's Flux parser and type checker (harness/flux, installed by `make test`)."""
    result = subprocess.run(
        ["node", str(FLUX_CHECK)], input=json.dumps(scripts), capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout)


def written_metrics(plan: Plan, stack: str) -> dict[str, dict[str, set[str]]]:
    """What reaches the metrics bucket: the collector's inputs as Telegraf's source at the pinned
    version emits them under this config (harness/telegraf_catalogue.py), and the backup runner's
    own point, as its code writes it (runner/metrics.py)."""
    catalogue = telegraf_catalogue.load()
    image = settings_of(stack).monitoring.collector_image
    assert image.split(":", 1)[1].startswith(catalogue["telegraf"] + "-"), (
        f"the collector runs {image}, the catalogue is of Telegraf {catalogue['telegraf']}: regenerate it"
    )
    config = tomllib.loads(uploaded(container(plan, "collector"), "/etc/telegraf/telegraf.conf"))
    container_labels = {item["label"] for c in containers(plan) for item in c.inputs.get("labels", [])}
    written = telegraf_catalogue.emitted(config, catalogue, container_labels)
    # The heartbeat goes to CloudWatch only: the InfluxDB output drops it.
    for dropped in config["outputs"]["influxdb_v2"][0].get("namedrop", []):
        written.pop(dropped, None)
    archiving = ArchiverStatus(1, "000000010000000000000001", 0.0, 0, None, None, "000000010000000000000002")
    for point in (
        RunOutcome("postgres", "scheduled", True, 1.0, 10).line(stack, 0),
        archiving_line(stack, archiving, 1.0),
        seed_age_line(stack, (86400.0, "staging-seed/postgres/audit_x_prod/2026-11-29T040000Z.dump"), 1.0),
        *rows_lines(stack, "loaded", {"public.users": 2000}, 1.0),
    ):
        head, fields, _ = point.split(" ")
        measurement, *tags = head.split(",")
        known = written.setdefault(measurement, {"tags": set(), "fields": set()})
        known["tags"] |= {t.split("=")[0] for t in tags}
        known["fields"] |= {f.split("=")[0] for f in fields.split(",")}
    return written


def _matches(name: str, names: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in names)


def unknown_references(query: str, written: dict[str, dict[str, set[str]]]) -> list[str]:
    """Every measurement, field and tag a Flux query reads that nothing writes."""
    problems = []
    measurements = re.findall(r'r\._measurement == "([^"]+)"', query)
    for measurement in measurements:
        if measurement not in written:
            problems.append(f"measurement {measurement}")
    schema = {"tags": set(), "fields": set()}
    for measurement in measurements:
        for kind in ("tags", "fields"):
            schema[kind] |= written.get(measurement, {}).get(kind, set())
    for field in re.findall(r'r\._field == "([^"]+)"', query):
        if not _matches(field, schema["fields"]):
            problems.append(f"field {field}")
    pivoted = "pivot(" in query
    for line in query.splitlines():
        step = line.strip().removeprefix("|> ")
        if not step.startswith(("filter(", "group(", "map(")):
            continue
        columns = re.findall(r"\br\.([a-z_][a-z0-9_]*)", step) + re.findall(r'r\["([^"]+)"\]', step)
        columns += [c for group in re.findall(r"columns: \[([^\]]*)\]", step) for c in re.findall(r'"([^"]+)"', group)]
        for column in columns:
            if column.startswith("_"):
                continue  # _measurement, _field, _value, _time: every point has them
            # After a pivot, fields are columns too.
            readable = schema["tags"] | (schema["fields"] if pivoted and step.startswith("map(") else set())
            if not _matches(column, readable):
                problems.append(f"column {column}")
    return problems


# --- the edge ----------------------------------------------------------------------------------


def routes(plan: Plan) -> dict:
    return yaml.safe_load(uploaded(container(plan, "edge-routes"), NEW_ROUTES_FILE))


def edge_file(plan: Plan, path: str) -> dict:
    return yaml.safe_load(uploaded(container(plan, "edge"), path))


def fake_host(plan: Plan) -> dict[str, Any]:
    """A Docker host for harness/fake_docker_cli.py: every container `plan` declares, under its name,
    image and labels, running and healthy (a job exited 0), and the tags of the images it pulls."""
    containers = []
    for resource in plan.of_type(tokens.CONTAINER):
        labels = tokens.labels_of(resource.inputs)
        job = labels.get(tokens.label("lifecycle")) == "job"
        containers.append(
            {
                "name": resource.inputs["name"],
                "image": resource.inputs.get("image", ""),
                "state": "exited" if job else "running",
                "health": None if job or not resource.inputs.get("healthcheck") else "healthy",
                "exit_code": 0,
                "labels": labels,
                "logs": [],
            }
        )
    # The mock engine gives a pulled image the id mock_image_id(reference), which the containers take.
    images = {mock_image_id(r.inputs["name"]): [r.inputs["name"]] for r in plan.of_type(tokens.REMOTE_IMAGE)}
    return {"containers": containers, "exec": {}, "images": images}
