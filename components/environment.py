"""One whole audit-x environment: its Docker host's containers and its AWS resources.

Everything is built from the settings alone, so `staging` and `prod` are the same program with
different config. Providers are explicit and handed down to every child: the Docker provider
talks to this environment's host, the AWS provider to its region.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from components.app import App, web_slot
from components.backups.bucket import BackupBucket
from components.backups.pitr import PitrRepository
from components.backups.runner import RUNNER_UID, BackupRunner, PitrRunner
from components.backups.staging_seed import StagingSeedReader, StagingSeedSource
from components.data.influxdb import InfluxDb
from components.data.postgres import Postgres
from components.data.redis import Redis
from components.data.redpanda import Redpanda
from components.lib.containers import require_success
from components.lib.context import EnvironmentContext
from components.observability.alerting import alerting_file, pages_someone
from components.observability.collector import Collector
from components.observability.dashboard import dashboard_json
from components.observability.grafana import Grafana, notification_settings
from components.observability.logs import Logs
from components.observability.watcher import ExternalWatcher
from components.platform.docker_api import DockerApiProxy
from components.platform.edge import Edge
from components.platform.network import Networks
from components.platform.secrets import Secrets
from components.settings import Settings
from components.settings.secrets import active_slot, generation


class AuditXEnvironment(pulumi.ComponentResource):
    docker_provider: docker.Provider
    aws_provider: aws.Provider
    secrets: Secrets
    networks: Networks
    postgres: Postgres
    redis: Redis
    redpanda: Redpanda
    influxdb: InfluxDb
    grafana: Grafana
    logs: Logs
    watcher: ExternalWatcher
    docker_api: DockerApiProxy
    collector: Collector
    app: App
    backup_bucket: BackupBucket
    backup_runner: BackupRunner
    edge: Edge

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("audit-x:environment:Environment", name, None, opts)
        ctx = EnvironmentContext.from_settings(settings)
        self.settings = settings
        self.context = ctx

        self.docker_provider = docker.Provider(
            ctx.name("docker"), host=settings.docker_host, opts=pulumi.ResourceOptions(parent=self)
        )
        self.aws_provider = aws.Provider(
            ctx.name("aws"), region=settings.aws_region, opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(parent=self, providers=[self.docker_provider, self.aws_provider])
        # In this order: each part uses what the parts before it declared.
        self._declare_secrets_and_storage(child)
        self._declare_data_services(child)
        self._declare_observability(child)
        self._declare_backup_runner(child)
        self._declare_app(child)
        self._declare_watch_and_edge(child)
        # After every consumer of Redis (the app roles, through the edge's new routes) is on the
        # active password: the other one is removed (docs/secret-rotation.md).
        self.redis_password_retire = self.redis.retire_unused_password(
            after=[*self.app.containers(), self.edge.routes_job], opts=child
        )
        if not pages_someone(settings):
            # Not an error (staging may run without a pager), but never silent.
            pulumi.log.warn(
                f"critical alerts of {settings.environment} page nobody: no PagerDuty routing key is set. "
                "Set one with `pulumi config set --secret pagerdutyRoutingKey <key>` (docs/observability.md)."
            )
        self.register_outputs(self.outputs())

    def _declare_secrets_and_storage(self, child: pulumi.ResourceOptions) -> None:
        """Secrets and their key, the backup bucket, staging's seed, the networks, pgBackRest's repository."""
        settings, ctx = self.settings, self.context
        self.secrets = Secrets(
            ctx.name("secrets"),
            settings.provided_secrets,
            ctx=ctx,
            rotation=settings.rotation,
            recovery_window_days=settings.secret_recovery_window_days,
            kms_deletion_window_days=settings.kms_deletion_window_days,
            opts=child,
        )
        seed_settings = settings.staging_seed
        self.backup_bucket = BackupBucket(
            ctx.name("backups"),
            settings.backup,
            ctx=ctx,
            kms_key=self.secrets.kms_key,
            # pgBackRest's repository, locked for the PITR window and the week before it.
            default_lock_days=settings.pitr.repository_lock_days,
            # Where this stack makes staging's seeds, they expire after stagingSeed.keepDays.
            seed_keep_days=seed_settings.keep_days if seed_settings and seed_settings.rules else None,
            opts=child,
        )
        # Staging's data: prod makes masked seeds, staging reads them (components/backups/staging_seed.py).
        self.staging_seed: StagingSeedSource | StagingSeedReader | None = None
        if seed_settings and seed_settings.rules:
            self.staging_seed = StagingSeedSource(
                ctx.name("staging-seed"),
                seed_settings,
                ctx=ctx,
                secrets=self.secrets,
                bucket=self.backup_bucket.bucket,
                database=settings.database_name,
                kms_deletion_window_days=settings.kms_deletion_window_days,
                opts=child,
            )
        elif seed_settings:
            self.staging_seed = StagingSeedReader(
                ctx.name("seed-reader"), seed_settings, ctx=ctx, secrets=self.secrets, opts=child
            )
        self.networks = Networks(ctx.name("networks"), ctx=ctx, opts=child)
        # pgBackRest's repository: its identity and configuration, before the server that archives.
        self.pitr = PitrRepository(
            ctx.name("pgbackrest"),
            settings.pitr,
            ctx=ctx,
            bucket_name=settings.backup.bucket_name,
            region=settings.aws_region,
            kms_key=self.secrets.kms_key,
            secrets=self.secrets,
            superuser=settings.postgres.user,
            opts=child,
        )

    def _declare_data_services(self, child: pulumi.ResourceOptions) -> None:
        settings, ctx = self.settings, self.context
        data_network = self.networks.data
        self.postgres = Postgres(
            ctx.name("postgres"),
            settings.postgres,
            ctx=ctx,
            database=settings.database_name,
            password=self.secrets.value("postgres-password"),
            logins=self.secrets.alternating("postgres-password"),
            active_login=active_slot(generation(settings.rotation, "postgres-password")),
            data_network=data_network,
            archiving=self.pitr.archiving(),
            opts=child,
        )
        self.redis = Redis(
            ctx.name("redis"),
            settings.redis,
            ctx=ctx,
            passwords=self.secrets.alternating("redis-password"),
            active=active_slot(generation(settings.rotation, "redis-password")),
            data_network=data_network,
            opts=child,
        )
        self.redpanda = Redpanda(
            ctx.name("redpanda"),
            settings.redpanda,
            ctx=ctx,
            # Lag refreshed as often as the collector scrapes it.
            lag_interval_seconds=settings.monitoring.collection_interval_seconds,
            data_network=data_network,
            opts=child,
        )
        self.influxdb = InfluxDb(
            ctx.name("influxdb"),
            settings.influxdb,
            ctx=ctx,
            admin_password=self.secrets.value("influxdb-admin-password"),
            operator_token=self.secrets.value("influxdb-operator-token"),
            data_network=data_network,
            opts=child,
        )

    def _declare_observability(self, child: pulumi.ResourceOptions) -> None:
        """Loki and Alloy, and Grafana with its datasources, dashboard and alerting."""
        settings, ctx = self.settings, self.context
        self.logs = Logs(ctx.name("logs"), settings.logs, ctx=ctx, data_network=self.networks.data, opts=child)
        self.grafana = Grafana(
            ctx.name("grafana"),
            settings.grafana,
            ctx=ctx,
            public_url=f"https://grafana.{settings.domain}",
            admin_password=self.secrets.value("grafana-admin-password"),
            influxdb=self.influxdb.endpoint(self.secrets.value("influxdb-operator-token")),
            loki_url=self.logs.url,
            alerting_file=alerting_file(settings),
            dashboards={"platform.json": dashboard_json(settings)},
            notifications=notification_settings(
                settings.alerting.smtp,
                slack_webhook_url=self.secrets.optional_value("slack-webhook-url"),
                pagerduty_routing_key=self.secrets.optional_value("pagerduty-routing-key"),
                smtp_password=self.secrets.optional_value("smtp-password"),
            ),
            networks=self.networks,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.influxdb])),
        )

    def _declare_backup_runner(self, child: pulumi.ResourceOptions) -> None:
        settings, ctx = self.settings, self.context
        # Archiving is always on here (its component is optional for the component tests alone).
        assert self.postgres.server_image is not None
        self.backup_runner = BackupRunner(
            ctx.name("backup"),
            settings.backup,
            ctx=ctx,
            region=settings.aws_region,
            bucket=self.backup_bucket.bucket,
            kms_key=self.secrets.kms_key,
            secrets=self.secrets,
            postgres_image=settings.postgres.image,
            influxdb_image=settings.influxdb.image,
            database=self.postgres.endpoint,
            influxdb=self.influxdb.endpoint(self.secrets.value("influxdb-operator-token")),
            networks=self.networks,
            depends_on=[self.postgres.ready, self.influxdb, self.backup_bucket],
            pitr=PitrRunner(
                archiving=self.pitr.archiving(),
                server_image=self.postgres.server_image,
                server_image_name=self.postgres.server_image_name,
                data_volume=self.postgres.volume.name,
                socket_volume=self.postgres.socket_volume.name,
                full_schedule=settings.pitr.full_schedule,
                diff_schedule=settings.pitr.diff_schedule,
                drill_schedule=settings.pitr.drill_schedule,
            ),
            seed=self.staging_seed.runner_setup(RUNNER_UID) if self.staging_seed else None,
            opts=child,
        )

    def _declare_app(self, child: pulumi.ResourceOptions) -> None:
        settings, ctx = self.settings, self.context
        data_services: list[pulumi.Input[pulumi.Resource]] = [self.postgres, self.redis, self.redpanda, self.influxdb]
        self.app = App(
            ctx.name("app"),
            settings.app,
            ctx=ctx,
            env=self.app_env(),
            secrets=self.app_secrets(),
            networks=self.networks,
            # The migration job needs the data services up and the app's database login ready (and,
            # where config says so, a fresh backup); web and workers wait for the migration.
            depends_on=[*data_services, self.postgres.ready],
            backup_before_migration=self.backup_runner.pre_migration_backup,
            opts=child,
        )

    def _declare_watch_and_edge(self, child: pulumi.ResourceOptions) -> None:
        """The external watcher on AWS, the Docker API proxy and the collector, and the edge."""
        settings, ctx = self.settings, self.context
        self.watcher = ExternalWatcher(
            ctx.name("watcher"),
            settings.watcher,
            ctx=ctx,
            domain=settings.domain,
            secrets=self.secrets,
            pagerduty_cloudwatch_url=self.secrets.optional_value("pagerduty-cloudwatch-url"),
            kms_deletion_window_days=settings.kms_deletion_window_days,
            runbook_base_url=settings.alerting.runbook_base_url,
            opts=child,
        )
        self.docker_api = DockerApiProxy(
            ctx.name("docker-api"), settings.monitoring.docker_api_proxy_image, ctx=ctx, opts=child
        )
        self.collector = Collector(
            ctx.name("collector"),
            settings.monitoring,
            ctx=ctx,
            web_urls=[f"http://{web_slot(i)}:{settings.app.web.port}" for i in range(settings.app.web.replicas)],
            influxdb=self.influxdb.endpoint(self.secrets.value("influxdb-operator-token")),
            docker_api=self.docker_api,
            heartbeat=self.watcher.heartbeat(settings.watcher, settings.environment),
            networks=self.networks,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.influxdb])),
        )
        self.edge = Edge(
            ctx.name("edge"),
            settings.edge,
            ctx=ctx,
            domain=settings.domain,
            web=self.app.web,
            web_port=settings.app.web.port,
            canary=self.app.canary,
            canary_weight=settings.app.canary.weight if settings.app.canary else 0,
            grafana_host="grafana",
            app_network=self.networks.app,
            opts=child,
        )

    def jobs(self) -> dict[str, docker.Container]:
        """The one-shot jobs, by what they do."""
        jobs = {
            "postgres-password": self.postgres.password_job,
            "postgres-logins": self.postgres.logins_job,
            "redis-password": self.redis.password_job,
            "redpanda-cluster-properties": self.redpanda.lag_metrics_job,
            "grafana-admin-password": self.grafana.admin_password_job,
            "migrate": self.app.migration,
            "edge-routes": self.edge.routes_job,
            "redis-password-retire": self.redis_password_retire,
        }
        if self.app.pre_migration_backup:
            jobs["pre-migration-backup"] = self.app.pre_migration_backup
        if self.postgres.stanza_job:
            jobs["pgbackrest-stanza"] = self.postgres.stanza_job
        return jobs

    def app_env(self) -> dict[str, pulumi.Input[str]]:
        """What every app role is told about its environment: no secret. The connection URLs
        carry no password; the launcher puts it in from its file (components/app.py)."""
        database, redis = self.postgres.endpoint, self.redis
        return {
            "AUDIT_X_ENVIRONMENT": self.context.environment,
            "DATABASE_URL": f"postgres://{database.login}@{database.host}:{database.port}/{database.database}",
            "REDIS_URL": f"redis://{redis.host}:{redis.port}/0",
            "KAFKA_BROKERS": self.redpanda.brokers,
            "INFLUXDB_URL": self.influxdb.url,
            "INFLUXDB_ORG": self.influxdb.org,
            "INFLUXDB_BUCKET": self.influxdb.bucket,
        }

    def app_secrets(self) -> dict[str, pulumi.Output[str]]:
        """The app's secrets by the variable the app reads them from; each reaches it as a file."""
        secrets = {
            "DATABASE_PASSWORD": self.postgres.endpoint.password,
            "REDIS_PASSWORD": self.redis.password,
            "INFLUXDB_TOKEN": self.secrets.value("influxdb-operator-token"),
            "SECRET_KEY_BASE": self.secrets.value("secret-key-base"),
        }
        sentry_dsn = self.secrets.optional_value("sentry-dsn")
        if sentry_dsn is not None:
            secrets["SENTRY_DSN"] = sentry_dsn
        return secrets

    def outputs(self) -> dict[str, object]:
        """What an operator needs to find things: names, URLs and ARNs; never a secret value."""
        settings = self.settings
        return {
            "environment": settings.environment,
            "dockerHost": settings.docker_host,
            "appUrl": f"https://{settings.domain}",
            # What runs: the stable image and the canary in progress (ops/canary.py resumes from it).
            "release": {
                "image": settings.app.image,
                "canary": settings.app.canary.model_dump(mode="json") if settings.app.canary else None,
            },
            "grafanaUrl": self.grafana.url,
            "database": settings.database_name,
            "databaseLogin": self.postgres.app_login,
            # The slot of Redis's password the app uses (a or b); the other one is retired.
            "redisPasswordSlot": self.redis.active_slot,
            # Every one-shot job of this update, once it exited 0: a job nothing else waits for
            # (the Grafana password, Redpanda's cluster properties) still fails `pulumi up`.
            "jobs": {name: require_success(job) for name, job in self.jobs().items()},
            "backupBucket": self.backup_bucket.bucket.bucket,
            "backupBucketArn": self.backup_bucket.bucket.arn,
            "kmsKeyArn": self.secrets.kms_key.arn,
            # Prod: where staging finds its seeds (read by staging's StackReference); else None.
            "stagingSeed": self.staging_seed.export() if isinstance(self.staging_seed, StagingSeedSource) else None,
            "secretArns": self.secrets.arns(),
            "watcherTopicArn": self.watcher.topic.arn,
            "networks": {"data": self.networks.data.name, "app": self.networks.app.name},
            "containers": {
                "postgres": self.postgres.container.name,
                "redis": self.redis.container.name,
                "redpanda": self.redpanda.container.name,
                "influxdb": self.influxdb.container.name,
                "grafana": self.grafana.container.name,
                "loki": self.logs.loki.name,
                "alloy": self.logs.alloy.name,
                "collector": self.collector.container.name,
                "docker-api": self.docker_api.container.name,
                "backup": self.backup_runner.container.name,
                "edge": self.edge.container.name,
                "migrate": self.app.migration.name,
                "web": [c.name for c in self.app.web],
                "workers": {name: [c.name for c in cs] for name, cs in self.app.workers.items()},
            },
        }
