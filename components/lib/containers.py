"""How every container of an environment is declared: written once, used by every component.

A long-running container always gets a pinned image, a health check that `pulumi up` waits on,
a restart policy, a memory limit (and no swap beyond it), json-file log rotation, ownership
labels, and only the networks it is given. Secrets reach data services as files under
/run/secrets (mode 0400, owned by the service's user), never as image arguments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from components.lib.context import EnvironmentContext
from components.lib.durations import go_duration
from components.lib.tokens import LABEL_PREFIX

SECRETS_DIR = "/run/secrets"
# On top of the health or run wait: pulling the image and creating the container.
CREATE_MARGIN_SECONDS = 300
LIFECYCLE_LABEL = f"{LABEL_PREFIX}.lifecycle"
LOG_LABELS = ",".join(f"{LABEL_PREFIX}.{name}" for name in ("environment", "service", "role"))


@dataclass(frozen=True)
class HealthCheck:
    """A shell probe Docker runs inside the container. `pulumi up` waits until it passes."""

    command: str
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = 3
    start_period: str = "30s"
    start_interval: str = "2s"

    def args(self) -> docker.ContainerHealthcheckArgs:
        # Written as the provider reads them back (components/lib/durations.py): no diff on refresh.
        return docker.ContainerHealthcheckArgs(
            tests=["CMD-SHELL", self.command],
            interval=go_duration(self.interval),
            timeout=go_duration(self.timeout),
            retries=self.retries,
            start_period=go_duration(self.start_period),
            start_interval=go_duration(self.start_interval),
        )


@dataclass(frozen=True)
class SecretFile:
    """A secret written into the container before it starts, readable only by `owner`."""

    path: str
    content: pulumi.Input[str]
    owner: str = "0"

    def args(self) -> docker.ContainerUploadArgs:
        return docker.ContainerUploadArgs(
            file=self.path,
            content=pulumi.Output.secret(self.content),
            permissions="0400",
            owner=self.owner,
            group=self.owner,
        )


@dataclass(frozen=True)
class ConfigFile:
    """A non-secret config file written into the container before it starts (0555: a program)."""

    path: str
    content: pulumi.Input[str]
    mode: str = "0444"

    def args(self) -> docker.ContainerUploadArgs:
        return docker.ContainerUploadArgs(file=self.path, content=self.content, permissions=self.mode)


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that differs between two containers; the rest is the environment's policy."""

    service: str
    role: str
    image: pulumi.Input[str]
    memory_mb: int
    networks: Sequence[docker.ContainerNetworksAdvancedArgs]
    healthcheck: HealthCheck | None
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    command: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None  # replaces the image's, for jobs in an image built to serve
    files: Sequence[SecretFile | ConfigFile] = ()
    volumes: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    extra_labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    ports: Sequence[tuple[int, int]] = ()  # (container port, host port): the edge proxy's alone
    host_mounts: Mapping[str, str] = field(default_factory=dict)  # host path -> container path, read-only
    user: str | None = None  # `user[:group]`, when the image's default is not the one to run as
    wait_timeout_seconds: int = 120  # long-running: how long it may take to become healthy
    run_timeout_seconds: int = 600  # one-shot: how long the job may run
    stop_grace_seconds: int = 30
    shm_size_mb: int | None = None  # /dev/shm; Docker's default is 64 MB


def script_job(
    *,
    service: str,
    role: str,
    image: pulumi.Input[str],
    script: str,
    networks: Sequence[docker.ContainerNetworksAdvancedArgs],
    env: Mapping[str, pulumi.Input[str]] | None = None,
    files: Sequence[SecretFile | ConfigFile] = (),
    volumes: Mapping[str, pulumi.Input[str]] | None = None,
    memory_mb: int = 128,
    run_timeout_seconds: int = 120,
) -> ContainerSpec:
    """A one-shot job running a shell script shipped beside its component, in the service's own
    image: its entrypoint is bypassed (it would start the server), the script reads what it needs
    from its environment and files."""
    return ContainerSpec(
        service=service,
        role=role,
        image=image,
        memory_mb=memory_mb,
        networks=networks,
        entrypoint=["sh", "-c"],
        command=[script],
        env=env or {},
        files=files,
        volumes=volumes or {},
        healthcheck=None,
        run_timeout_seconds=run_timeout_seconds,
    )


def pinned_image(name: str, reference: str, parent: pulumi.Resource) -> docker.RemoteImage:
    """Pull an image by its pinned reference; kept on the host so a rollback needs no registry."""
    return docker.RemoteImage(
        name,
        name=reference,
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def named_volume(
    ctx: EnvironmentContext, name: str, service: str, purpose: str, parent: pulumi.Resource
) -> docker.Volume:
    """A named volume for a service's data: protected and retained where config says so."""
    return docker.Volume(
        name,
        name=name,
        labels=[docker.VolumeLabelArgs(label=k, value=v) for k, v in ctx.labels(service, purpose).items()],
        opts=ctx.stateful(parent),
    )


def on_network(network: docker.Network, *aliases: str) -> docker.ContainerNetworksAdvancedArgs:
    return docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=list(aliases))


def env_list(env: Mapping[str, pulumi.Input[str]]) -> list[pulumi.Output[str]]:
    """Docker's `KEY=value` list, sorted so the diff of a preview is stable.

    One output per entry, so only the entries that carry a secret are secret.
    """
    return [pulumi.Output.concat(key, "=", value) for key, value in sorted(env.items())]


def _container_args(
    ctx: EnvironmentContext,
    name: pulumi.Input[str],
    spec: ContainerSpec,
    *,
    restart: str,
    long_running: bool,
) -> docker.ContainerArgs:
    return docker.ContainerArgs(
        name=name,
        image=spec.image,
        envs=env_list(spec.env) if spec.env else None,
        command=list(spec.command) if spec.command else None,
        entrypoints=list(spec.entrypoint) if spec.entrypoint else None,
        restart=restart,
        healthcheck=spec.healthcheck.args() if spec.healthcheck else None,
        # Long-running: `pulumi up` waits for the health check to pass, so an unhealthy service
        # fails the update instead of being reported as created.
        wait=long_running,
        wait_timeout=spec.wait_timeout_seconds if long_running else None,
        must_run=long_running,
        # One-shot: the provider attaches, waits for the job to end and records exit_code. Not
        # `rm`: an auto-removed container cannot be read back
        # (kreuzwerker/terraform-provider-docker#639).
        attach=not long_running,
        logs=not long_running,
        memory=spec.memory_mb,
        # Equal to memory: no swap, so a leak ends in an OOM kill and a restart, not a crawl.
        memory_swap=spec.memory_mb,
        labels=[
            docker.ContainerLabelArgs(label=k, value=v)
            for k, v in {
                **ctx.labels(spec.service, spec.role),
                # Alerts tell a service that stopped from a job that finished.
                LIFECYCLE_LABEL: "service" if long_running else "job",
                **spec.extra_labels,
            }.items()
        ],
        log_driver="json-file",
        log_opts={
            "max-size": f"{ctx.log_rotation.max_size_mb}m",
            "max-file": str(ctx.log_rotation.max_files),
            # Written into every line's `attrs`: the log shipper's labels, without the Docker socket.
            "labels": LOG_LABELS,
        },
        networks_advanced=list(spec.networks),
        ports=[docker.ContainerPortArgs(internal=inner, external=outer, protocol="tcp") for inner, outer in spec.ports]
        or None,
        uploads=[f.args() for f in spec.files] or None,
        volumes=[
            docker.ContainerVolumeArgs(volume_name=volume, container_path=path) for path, volume in spec.volumes.items()
        ]
        + [
            docker.ContainerVolumeArgs(host_path=host, container_path=path, read_only=True)
            for host, path in spec.host_mounts.items()
        ]
        or None,
        destroy_grace_seconds=spec.stop_grace_seconds,
        stop_timeout=spec.stop_grace_seconds,
        user=spec.user,
        shm_size=spec.shm_size_mb,
        init=True,
        security_opts=["no-new-privileges:true"],
    )


def revision(ctx: EnvironmentContext, spec: ContainerSpec, *extra: str) -> pulumi.Output[str]:
    """8 hex digits that change whenever anything the container is created from changes.

    Part of the Docker name of containers that are replaced create-before-delete: Docker refuses
    two containers of one name, so the new one needs a name of its own. Derived from secrets too
    (a rotated password is a new container), so the hash is unsecreted: 32 bits of a SHA-256 over
    random passwords of 238 bits and more tell nothing about them.
    """
    material: dict[str, Any] = {
        "image": spec.image,
        "service": [spec.service, spec.role],
        "env": dict(spec.env),
        "command": list(spec.command or []),
        "entrypoint": list(spec.entrypoint or []),
        "files": [[f.path, f.content, getattr(f, "owner", "")] for f in spec.files],
        "volumes": dict(spec.volumes),
        "host_mounts": dict(spec.host_mounts),
        "labels": dict(spec.extra_labels),
        "networks": [[n.name, n.aliases] for n in spec.networks],
        "ports": [list(p) for p in spec.ports],
        "health": dataclasses.asdict(spec.healthcheck) if spec.healthcheck else None,
        "limits": [spec.memory_mb, spec.shm_size_mb, spec.user, spec.stop_grace_seconds],
        "waits": [spec.wait_timeout_seconds, spec.run_timeout_seconds],
        "logs": [ctx.log_rotation.max_size_mb, ctx.log_rotation.max_files],
        "extra": list(extra),
    }
    digest = pulumi.Output.from_input(material).apply(
        lambda resolved: hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:8]
    )
    return pulumi.Output.unsecret(digest)


def long_running_container(
    ctx: EnvironmentContext,
    name: str,
    spec: ContainerSpec,
    opts: pulumi.ResourceOptions,
    *,
    rolling: bool = False,
) -> docker.Container:
    """A service that stays up: restarted by Docker, and only declared done once healthy.

    `rolling`: the Docker name carries the container's revision, so a change creates the new
    container (and waits until it is healthy) before the old one is removed, at the end of the
    update. Not rolling: the name is fixed and a replacement removes the old container first
    (data services: one container owns the data volume). Either way the option is set
    explicitly: pulumi-docker replaces containers delete-first unless told otherwise.
    """
    if spec.healthcheck is None:
        raise ValueError(f"container {name} is long-running and must have a health check")
    docker_name: pulumi.Input[str] = pulumi.Output.concat(name, "-", revision(ctx, spec)) if rolling else name
    args = _container_args(ctx, docker_name, spec, restart="unless-stopped", long_running=True)
    options = pulumi.ResourceOptions(
        delete_before_replace=not rolling,
        # The provider's create includes the health wait; its own default (20 min) would cut a
        # longer wait short.
        custom_timeouts=_create_timeout(spec.wait_timeout_seconds),
        # The provider's Update never applies a new health check or init to a running container
        # (terraform-provider-docker v4.5.0 resource_docker_container_funcs.go:1016-1019): the
        # state changes, the container keeps the old ones. A rolling container gets its health
        # check through its name (revision); a fixed-name one is replaced, delete-first, like any
        # other change to it (harness/provider_behaviour.yaml, state_only).
        replace_on_changes=None if rolling else ["healthcheck", "init"],
    )
    return docker.Container(name, args, pulumi.ResourceOptions.merge(opts, options))


def one_shot_container(
    ctx: EnvironmentContext, name: str, spec: ContainerSpec, opts: pulumi.ResourceOptions
) -> docker.Container:
    """A job that runs to completion during `pulumi up`; `succeeded(job)` gates what comes after.

    The Docker name carries the job's revision (with the environment's `deploy.rerunJobs`
    marker): any change runs the job again as a new container, created before the old one is
    removed, never delete-first. Unchanged, it does not run again.
    """
    args = _container_args(
        ctx,
        pulumi.Output.concat(name, "-", revision(ctx, spec, ctx.rerun_jobs)),
        spec,
        restart="no",
        long_running=False,
    )
    options = pulumi.ResourceOptions(
        delete_before_replace=False, custom_timeouts=_create_timeout(spec.run_timeout_seconds)
    )
    return docker.Container(name, args, pulumi.ResourceOptions.merge(opts, options))


def _create_timeout(wait_seconds: int) -> pulumi.CustomTimeouts:
    return pulumi.CustomTimeouts(create=f"{wait_seconds + CREATE_MARGIN_SECONDS}s")


def require_success(job: docker.Container) -> pulumi.Output[str]:
    """An output that resolves once the job exited 0, and fails the update otherwise.

    The docker provider records a one-shot container's exit code but does not fail on it.
    """

    def check(values: list[Any]) -> str:
        code, docker_name, urn = values
        job_name = str(urn).rsplit("::", 1)[-1]  # the Pulumi name, as `pulumi up` shows it
        if code != 0:
            raise pulumi.RunError(
                f"{job_name} exited with code {code}: the update stops here and the running containers "
                f"are left as they were. Read why with `docker logs {docker_name}`. Once the cause is "
                "fixed, run the jobs again with a new marker: "
                "`pulumi config set --path deploy.rerunJobs <new value>` then `pulumi up`."
            )
        return "succeeded"

    return pulumi.Output.all(job.exit_code, job.name, job.urn).apply(check)


def succeeded(job: docker.Container) -> pulumi.Output[docker.Container]:
    """The job, once it exited 0: for `depends_on`, so what follows waits for the job and is never
    created after a failure, without any of the job's outputs becoming an input (an input that
    carries a job's output would be replaced, delete-first, whenever the job is)."""
    return require_success(job).apply(lambda _: job)
