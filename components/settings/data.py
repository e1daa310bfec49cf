"""The data services' sections: PostgreSQL, Redis, Redpanda, InfluxDB."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from components.settings.types import ConfigModel, Megabytes, PinnedImage


class PostgresSettings(ConfigModel):
    image: PinnedImage = "postgres:17.6-bookworm"
    # The bootstrap superuser; the app's roles add `_owner`, `_a`, `_b` to it, within PostgreSQL's
    # 63 characters (components/data/postgres.py).
    user: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,56}$")] = "audit_x"
    memory_limit_mb: Megabytes = Field(ge=256, le=262144)
    shared_buffers_mb: Megabytes = Field(ge=16, le=131072)
    effective_cache_size_mb: Megabytes = Field(ge=16, le=262144)
    work_mem_mb: Megabytes = Field(default=8, ge=1, le=4096)
    maintenance_work_mem_mb: Megabytes = Field(default=64, ge=16, le=16384)
    max_connections: int = Field(default=100, ge=10, le=5000)
    # Docker's default /dev/shm is 64 MB: parallel queries then fail with "could not resize
    # shared memory segment".
    shm_size_mb: Megabytes = Field(default=256, ge=64, le=65536)

    @model_validator(mode="after")
    def _fits_in_memory_limit(self) -> PostgresSettings:
        if self.shm_size_mb > self.memory_limit_mb // 2:
            raise ValueError(
                f"shmSizeMb ({self.shm_size_mb}) must be at most half of memoryLimitMb ({self.memory_limit_mb}): "
                "shared memory counts against the limit"
            )
        # shared_buffers is allocated up front; past ~40% of the container's memory the kernel's
        # page cache starves and the OOM killer takes the database under load.
        if self.shared_buffers_mb * 10 > self.memory_limit_mb * 4:
            raise ValueError(
                f"sharedBuffersMb ({self.shared_buffers_mb}) must be at most 40% of "
                f"memoryLimitMb ({self.memory_limit_mb})"
            )
        return self


class RedisSettings(ConfigModel):
    image: PinnedImage = "redis:7.4.5-bookworm"
    memory_limit_mb: Megabytes = Field(ge=64, le=65536)
    max_memory_mb: Megabytes = Field(ge=32, le=65536)

    @model_validator(mode="after")
    def _headroom_for_fork(self) -> RedisSettings:
        # AOF rewrites fork the process: keep a quarter of the limit free for copy-on-write.
        if self.max_memory_mb * 4 > self.memory_limit_mb * 3:
            raise ValueError(
                f"maxMemoryMb ({self.max_memory_mb}) must be at most 75% of memoryLimitMb ({self.memory_limit_mb})"
            )
        return self


class RedpandaSettings(ConfigModel):
    image: PinnedImage = "docker.redpanda.com/redpandadata/redpanda:v25.1.9"
    cores: int = Field(ge=1, le=64)
    memory_mb: Megabytes = Field(ge=512, le=262144)
    memory_limit_mb: Megabytes = Field(ge=768, le=262144)

    @model_validator(mode="after")
    def _headroom_for_seastar(self) -> RedpandaSettings:
        # --memory is what Seastar allocates; the process needs more than that on top.
        if self.memory_mb + 256 > self.memory_limit_mb:
            raise ValueError(
                f"memoryLimitMb ({self.memory_limit_mb}) must exceed memoryMb ({self.memory_mb}) by at least 256"
            )
        return self


def _influxdb_2(value: str) -> str:
    # The setup-on-first-start env (DOCKER_INFLUXDB_INIT_*) and the token model are 2.x's.
    tag = value.split("@", maxsplit=1)[0].rsplit(":", 1)[-1]
    if not tag.startswith("2."):
        raise ValueError("expected an InfluxDB 2.x image, such as 'influxdb:2.7.11-alpine'")
    return value


BucketOrOrgName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class InfluxDbSettings(ConfigModel):
    image: Annotated[PinnedImage, AfterValidator(_influxdb_2)] = "influxdb:2.7.11-alpine"
    org: BucketOrOrgName = "audit-x"
    bucket: BucketOrOrgName = "metrics"
    retention_days: int = Field(ge=1, le=3650)
    memory_limit_mb: Megabytes = Field(ge=256, le=65536)
