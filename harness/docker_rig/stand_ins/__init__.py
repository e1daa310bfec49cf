"""The images the rig builds besides the project's own: the app stand-in, and the services the rig
cannot have for real, each under a name a stack's config can give (`audit-x-rig/<name>:<tag>`).

Each image is a directory here with a Dockerfile that builds FROM the rig's Debian base (build
argument `BASE`). `real` says whether the image runs the real server (Debian's package) or a
stand-in of this project's own, which keeps only the contract named in `keeps`: the health-check
command the program declares for it, the files it reads (refusing to start when a required one is
missing) and its ports. Every stand-in's image carries the label `io.audit-x.stand-in`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

STAND_INS_DIR = Path(__file__).resolve().parent
REPOSITORY = "audit-x-rig"
STAND_IN_LABEL = "io.audit-x.stand-in"
README = STAND_INS_DIR / "README.md"


@dataclass(frozen=True)
class RigImage:
    name: str  # the image's name, without the tag: audit-x-rig/app
    tag: str
    context: Path  # the build context, with its Dockerfile
    real: bool  # the real server (a Debian package), or a stand-in of this project's own
    keeps: str  # the contract it keeps, for whoever reads a test that uses it
    build_args: dict[str, str] = field(default_factory=dict)
    # The image whose name the build argument BASE gets: another of these, or None for the rig's
    # own Debian base.
    built_from: RigImage | None = None

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


STAND_IN_BASE = RigImage(
    f"{REPOSITORY}/stand-in-base",
    "1",
    STAND_INS_DIR / "base",
    real=False,
    keeps="python3 (with YAML), curl, wget, bash and the stand-ins' shared module, on the rig's Debian trixie",
)


def _app(tag: str, keeps: str, **build_args: str) -> RigImage:
    return RigImage(
        f"{REPOSITORY}/app",
        tag,
        STAND_INS_DIR / "app",
        real=False,
        keeps=keeps,
        build_args=build_args,
        built_from=STAND_IN_BASE,
    )


def _service(name: str, keeps: str) -> RigImage:
    return RigImage(
        f"{REPOSITORY}/{name}", "stand-in-1", STAND_INS_DIR / name, real=False, keeps=keeps, built_from=STAND_IN_BASE
    )


APP_CONTRACT = "docs/app-contract.md: launcher, /live /ready /health, heartbeat, JSON logs, migrations"
# Release 1 carries the first migration, release 2 both (an expand-only change: release 1 stays
# ready on release 2's schema), and a release 2 whose migration fails.
APP_RELEASE_1 = _app("stand-in-1", APP_CONTRACT, MIGRATIONS_UP_TO="20260101000001")
APP_RELEASE_2 = _app("stand-in-2", APP_CONTRACT, MIGRATIONS_UP_TO="20260201000001")
APP_FAILING_MIGRATION = _app(
    "stand-in-2-failing-migration",
    f"{APP_CONTRACT}; its migration fails",
    MIGRATIONS_UP_TO="20260201000001",
    STAND_IN_FAIL="migration",
)
REDPANDA = _service("redpanda", "components/data/redpanda.py: `rpk cluster health`, Kafka API 9092, admin API 9644")
INFLUXDB = _service("influxdb", "components/data/influxdb.py: setup from DOCKER_INFLUXDB_INIT_*, /health on 8086")
GRAFANA = _service("grafana", "components/observability/grafana.py: GF_*__FILE, provisioning, /api/health on 3000")
LOKI = _service("loki", "components/observability/logs.py: -config.file, /ready on 3100")
ALLOY = _service("alloy", "components/observability/logs.py: alloy run, config, log mount, /-/ready on 12345")
TELEGRAF = _service("telegraf", "components/observability/collector.py: --config, its files, inputs.docker, :8080")
TRAEFIK = _service("traefik", "components/platform/edge.py: --configFile, /ping 8082, file-provider routes, 80/443")

# Real: Debian trixie's redis-server, from the rig's Debian base (the program declares redis:7.4).
REDIS = RigImage(
    f"{REPOSITORY}/redis",
    "8.0",
    STAND_INS_DIR / "redis",
    real=True,
    keeps="components/data/redis.py: redis-server with the rendered redis.conf, redis-cli for the probe and the job",
)

APPS: tuple[RigImage, ...] = (APP_RELEASE_1, APP_RELEASE_2, APP_FAILING_MIGRATION)
SERVICES: dict[str, RigImage] = {
    "redis": REDIS,
    "redpanda": REDPANDA,
    "influxdb": INFLUXDB,
    "grafana": GRAFANA,
    "loki": LOKI,
    "alloy": ALLOY,
    "collector": TELEGRAF,
    "edge": TRAEFIK,
}
# In build order: every image after the one it is built from.
IMAGES: tuple[RigImage, ...] = (STAND_IN_BASE, *APPS, *SERVICES.values())


def by_reference(reference: str) -> RigImage:
    for image in IMAGES:
        if image.reference == reference:
            return image
    raise KeyError(f"no rig image {reference!r}; known: {', '.join(i.reference for i in IMAGES)}")
