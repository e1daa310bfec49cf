"""The app's section (image, web role, workers, migration) and the edge proxy in front of it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from components.settings.types import ConfigModel, EmailAddress, Megabytes, NonEmptyText, PinnedImage, RoleName, Seconds

Command = list[NonEmptyText]


class WebSettings(ConfigModel):
    replicas: int = Field(ge=1, le=20)
    command: Command = Field(
        default_factory=lambda: ["./bin/rails", "server"], min_length=1, description="the web role's command"
    )
    port: int = Field(default=3000, ge=1024, le=65535)
    memory_limit_mb: Megabytes = Field(ge=256, le=65536)
    health_timeout_seconds: Seconds = Field(
        default=120, ge=10, le=900, description="how long a new web container may take to become healthy"
    )
    drain_seconds: Seconds = Field(
        default=30, ge=5, le=600, description="time an old container gets to finish requests"
    )


class EdgeSettings(ConfigModel):
    """The edge proxy: TLS, rate limits and health-aware routing in front of the web role."""

    image: PinnedImage = "traefik:v3.3.4"
    acme_email: EmailAddress
    rate_limit_average: int = Field(default=50, ge=1, le=100000, description="requests per second per client IP")
    rate_limit_burst: int = Field(default=100, ge=1, le=100000)
    memory_limit_mb: Megabytes = Field(default=256, ge=64, le=8192)

    @model_validator(mode="after")
    def _burst_covers_average(self) -> EdgeSettings:
        if self.rate_limit_burst < self.rate_limit_average:
            raise ValueError(
                f"rateLimitBurst ({self.rate_limit_burst}) must be at least "
                f"rateLimitAverage ({self.rate_limit_average})"
            )
        return self


class WorkerSettings(ConfigModel):
    name: RoleName
    command: list[NonEmptyText] = Field(min_length=1)
    replicas: int = Field(ge=0, le=20)
    memory_limit_mb: Megabytes = Field(ge=128, le=65536)
    health_command: NonEmptyText | None = Field(
        default=None, description="shell probe; by default the worker's heartbeat file must be under a minute old"
    )


class CanarySettings(ConfigModel):
    """A canary release in progress: web containers of `image` beside the stable ones, taking
    `weight` % of the app's traffic at the edge (and every request with `X-Canary: 1`). Set and
    cleared by `python -m ops.canary`; absent when no canary runs."""

    image: PinnedImage
    weight: int = Field(default=0, ge=0, le=100, description="% of the app's traffic the canary takes")
    replicas: int = Field(default=1, ge=1, le=20)


class CanaryPolicy(ConfigModel):
    """How `python -m ops.canary` steps a canary and judges it against the stable version."""

    steps: list[int] = Field(default_factory=lambda: [5, 25, 50], min_length=1)
    interval_seconds: Seconds = Field(default=300, ge=30, le=3600, description="how long each step is watched")
    # Below this many canary requests in a step, nothing is judged: the step is watched again.
    min_requests: int = Field(default=200, ge=1, le=10_000_000)
    max_waits: int = Field(default=2, ge=0, le=10, description="extra intervals a quiet step may wait, then abort")
    max_error_ratio: float = Field(default=0.01, ge=0, le=1, description="5xx share always allowed")
    error_ratio_factor: float = Field(default=2.0, ge=1, le=100, description="... or this many times stable's")
    latency_factor: float = Field(default=1.2, ge=1, le=100, description="canary p99 at most this times stable's")
    smoke_paths: list[Annotated[str, StringConstraints(pattern=r"^/\S*$")]] = Field(
        default_factory=lambda: ["/health"], min_length=1
    )

    @field_validator("steps")
    @classmethod
    def _increasing_percentages(cls, steps: list[int]) -> list[int]:
        if any(not 0 < step < 100 for step in steps) or steps != sorted(set(steps)):
            raise ValueError(f"expected increasing percentages between 1 and 99, got {steps}")
        return steps


class AppSettings(ConfigModel):
    image: PinnedImage
    # The image's own entrypoint, run by the launcher (a Rails 7.1+ Dockerfile's); [] for none.
    entrypoint: Command = Field(default_factory=lambda: ["/rails/bin/docker-entrypoint"])
    # The user the image runs as (the Rails Dockerfile's `rails`): the secret files are its alone.
    uid: int = Field(default=1000, ge=1, le=65535)
    rails_env: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")] = "production"
    rails_max_threads: int = Field(default=5, ge=1, le=64)
    web: WebSettings
    workers: list[WorkerSettings] = Field(min_length=1)
    migration_memory_limit_mb: Megabytes = Field(default=512, ge=128, le=65536)
    migration_timeout_seconds: Seconds = Field(
        default=1800, ge=60, le=6 * 3600, description="how long `bin/rails db:migrate` may run before the update fails"
    )
    canary: CanarySettings | None = None
    canary_policy: CanaryPolicy = Field(default_factory=CanaryPolicy)

    @model_validator(mode="after")
    def _canary_is_another_version(self) -> AppSettings:
        if self.canary is not None and self.canary.image == self.image:
            raise ValueError(f"canary.image is the stable image ({self.image}): a canary must be another version")
        return self

    @property
    def migration_image(self) -> str:
        """The newest version's image: a canary's migrations run before it starts (they must be
        expand-only, so the stable version runs on the same schema: docs/deploy.md)."""
        return self.canary.image if self.canary else self.image

    @field_validator("workers")
    @classmethod
    def _unique_worker_names(cls, workers: list[WorkerSettings]) -> list[WorkerSettings]:
        names = [w.name for w in workers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"expected unique worker names, got {', '.join(duplicates)} more than once")
        if "web" in names or "migrate" in names:
            raise ValueError("worker names 'web' and 'migrate' are reserved for the web role and the migration job")
        return workers
