"""How every container of an environment is declared: written once, used by every component.

A long-running container always gets a pinned image, a health check that `pulumi up` waits on,
a restart policy, a memory limit (and no swap beyond it), json-file log rotation, ownership
labels, and only the networks it is given. Secrets reach data services as files under
/run/secrets (mode 0400, owned by the service's user), never as image arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.lib.context import LABEL_PREFIX, EnvironmentContext

SECRETS_DIR = "/run/secrets"
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
        return docker.ContainerHealthcheckArgs(
            tests=["CMD-SHELL", self.command],
            interval=self.interval,
            timeout=self.timeout,
            retries=self.retries,
            start_period=self.start_period,
            start_interval=self.start_interval,
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
    """A non-secret config file written into the container before it starts."""

    path: str
    content: pulumi.Input[str]

    def args(self) -> docker.ContainerUploadArgs:
        return docker.ContainerUploadArgs(file=self.path, content=self.content, permissions="0444")


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
    wait_timeout_seconds: int = 120
    stop_grace_seconds: int = 30


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
    name: str,
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
        init=True,
        security_opts=["no-new-privileges:true"],
    )


def long_running_container(
    ctx: EnvironmentContext,
    name: str,
    spec: ContainerSpec,
    opts: pulumi.ResourceOptions,
    *,
    container_name: str | None = None,
) -> docker.Container:
    """A service that stays up: restarted by Docker, and only declared done once healthy.

    With a `container_name` that differs per release, a new version is created (and waited on
    until healthy) before the old container is removed: Pulumi's create-before-delete. Without
    one, the fixed name forces the old container out first.
    """
    if spec.healthcheck is None:
        raise ValueError(f"container {name} is long-running and must have a health check")
    args = _container_args(ctx, container_name or name, spec, restart="unless-stopped", long_running=True)
    return docker.Container(name, args, opts if container_name else _replace_by_name(opts))


def one_shot_container(
    ctx: EnvironmentContext, name: str, spec: ContainerSpec, opts: pulumi.ResourceOptions
) -> docker.Container:
    """A job that runs to completion during `pulumi up`; its exit code is an output to gate on."""
    return docker.Container(
        name, _container_args(ctx, name, spec, restart="no", long_running=False), _replace_by_name(opts)
    )


def _replace_by_name(opts: pulumi.ResourceOptions) -> pulumi.ResourceOptions:
    # Container names are fixed, and Docker refuses a second container of the same name, so a
    # replacement must remove the old container first.
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True))


def require_success(job_name: str, exit_code: pulumi.Output[int | None]) -> pulumi.Output[str]:
    """An output that resolves to the exit code once it is 0, and fails the update otherwise.

    The docker provider records a one-shot container's exit code but does not fail on it;
    resources that take this output as an input are never (re)created after a failed job.
    """

    def check(code: int | None) -> str:
        if code != 0:
            raise pulumi.RunError(
                f"{job_name} exited with code {code}: the rollout stops here and the running "
                f"containers are left as they were. Read its output with `docker logs {job_name}`."
            )
        return "0"

    return exit_code.apply(check)
