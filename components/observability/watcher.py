"""Who watches the watcher: the environment watched from outside its Docker host, on AWS.

Everything else that watches an environment runs on its own host; a lost host, a hung Docker
daemon, a dropped network or a dead Grafana would page nobody. So, on AWS, sharing nothing with
the host:

- Route 53 health checks probe the app's public `/health` and Grafana's `/api/health` over HTTPS
  from several regions (`watcher.probeRegions`), every `watcher.probeIntervalSeconds`, unhealthy
  after `watcher.failureThreshold` failures; a CloudWatch alarm on each one's status.
- A dead man's switch for the monitoring itself: the collector sends a heartbeat metric to
  CloudWatch (namespace `audit-x/<env>`) every `watcher.heartbeatIntervalSeconds`, with an identity
  that may put metric data in that namespace and do nothing else; an alarm that counts missing
  data as breaching fires when it stops.
- An SNS topic per environment, encrypted with a KMS key of the environment's, which the alarms
  notify on alarm and on recovery; subscribed: PagerDuty's CloudWatch integration (the secret
  `pagerdutyCloudwatchUrl`) and the addresses in `watcher.emailTo`.

Route 53 publishes its health-check metrics in us-east-1 only, so those alarms, the heartbeat
and its alarm, the topic and its key live there, whatever the environment's region. The key is a
key of its own: KMS keys are regional, and making the environment's key multi-Region would
replace it (and with it every secret's encryption).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.lib.context import EnvironmentContext
from components.platform.identity import AccessKeyIdentity
from components.platform.secrets import Secrets
from components.settings import WatcherSettings

WATCH_REGION = "us-east-1"
# Telegraf's own `internal` input, field metrics_gathered: it grows only while the collector runs;
# its CloudWatch output names a metric <measurement>_<field>.
HEARTBEAT_MEASUREMENT = "internal_agent"
HEARTBEAT_FIELD = "metrics_gathered"
HEARTBEAT_METRIC = f"{HEARTBEAT_MEASUREMENT}_{HEARTBEAT_FIELD}"
RUNBOOK_SECTION = "the-host-is-unreachable"  # docs/runbooks.md
# Route 53's HealthCheckStatus and the heartbeat are per minute.
ALARM_PERIOD_SECONDS = 60
# Budgets of the delays no config sets (ops.ttd adds them up): CloudWatch has Route 53's
# per-minute datapoint only after the minute; SNS delivers to PagerDuty and e-mail.
METRIC_DELAY_SECONDS = 60
NOTIFICATION_SECONDS = 30


HEARTBEAT_PROFILE = "heartbeat"


@dataclass(frozen=True)
class Heartbeat:
    """The collector's side of the dead man's switch."""

    credentials: pulumi.Output[str]  # a shared-credentials file with the profile HEARTBEAT_PROFILE
    namespace: str
    interval_seconds: int
    region: str = WATCH_REGION
    profile: str = HEARTBEAT_PROFILE


@dataclass(frozen=True)
class Probe:
    """One endpoint Route 53 probes from outside."""

    key: str
    fqdn: str
    path: str


def probes(domain: str) -> list[Probe]:
    return [Probe("app", domain, "/health"), Probe("grafana", f"grafana.{domain}", "/api/health")]


def namespace(environment: str) -> str:
    return f"audit-x/{environment}"


def heartbeat_policy(environment: str) -> str:
    """Put metric data in the environment's namespace, and nothing else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "HeartbeatOnly",
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    # PutMetricData has no resource-level permissions: the namespace is the limit.
                    "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": namespace(environment)}},
                }
            ],
        },
        indent=2,
    )


def topic_key_policy(account_id: str) -> str:
    """The account administers the key; CloudWatch may use it to publish alarms to the topic."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchPublishesAlarms",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                },
            ],
        },
        indent=2,
    )


def time_to_detect(settings: WatcherSettings, flush_interval_seconds: int) -> dict[str, list[tuple[str, int]]]:
    """Each external check's worst-case delays from the failure to the page, by check name."""
    probe = [
        ("probe interval x threshold", settings.probe_interval_seconds * settings.failure_threshold),
        ("metric delay", METRIC_DELAY_SECONDS),
        ("alarm period x evaluations", ALARM_PERIOD_SECONDS * 1),
        ("notification", NOTIFICATION_SECONDS),
    ]
    heartbeat = [
        # The last heartbeat is flushed up to a flush interval after the failure, and the minute
        # it lands in is not missing.
        ("period of the last heartbeat", ALARM_PERIOD_SECONDS),
        ("flush", flush_interval_seconds),
        ("missing periods", ALARM_PERIOD_SECONDS * settings.heartbeat_missing_periods),
        ("notification", NOTIFICATION_SECONDS),
    ]
    return {**{f"{p.key}-unreachable": probe for p in probes("example.invalid")}, "heartbeat-missing": heartbeat}


class ExternalWatcher(pulumi.ComponentResource):
    key: aws.kms.Key
    topic: aws.sns.Topic
    subscriptions: list[aws.sns.TopicSubscription]
    health_checks: dict[str, aws.route53.HealthCheck]
    probe_alarms: dict[str, aws.cloudwatch.MetricAlarm]
    heartbeat_identity: AccessKeyIdentity
    heartbeat_alarm: aws.cloudwatch.MetricAlarm

    def __init__(
        self,
        name: str,
        settings: WatcherSettings,
        *,
        ctx: EnvironmentContext,
        domain: str,
        secrets: Secrets,
        pagerduty_cloudwatch_url: pulumi.Output[str] | None,
        kms_deletion_window_days: int,
        runbook_base_url: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:observability:ExternalWatcher", name, None, opts)
        env = ctx.environment
        runbook = f"{runbook_base_url}#{RUNBOOK_SECTION}"
        # Everything the alarms touch lives in us-east-1 (see the module's docstring).
        self.provider = aws.Provider(
            f"{name}-{WATCH_REGION}", region=WATCH_REGION, opts=pulumi.ResourceOptions(parent=self)
        )
        here = pulumi.ResourceOptions(parent=self, provider=self.provider)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(provider=self.provider))
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the external watcher's topic of audit-x {env}",
            enable_key_rotation=True,
            deletion_window_in_days=kms_deletion_window_days,
            policy=account.account_id.apply(topic_key_policy),
            tags=ctx.tags(Name=f"{name}-key"),
            opts=pulumi.ResourceOptions.merge(ctx.stateful(self), pulumi.ResourceOptions(provider=self.provider)),
        )
        self.topic = aws.sns.Topic(name, name=name, kms_master_key_id=self.key.arn, tags=ctx.tags(), opts=here)
        self.subscriptions = []
        if pagerduty_cloudwatch_url is not None:
            self.subscriptions.append(
                aws.sns.TopicSubscription(
                    f"{name}-pagerduty",
                    topic=self.topic.arn,
                    protocol="https",
                    # Holds PagerDuty's integration key: a secret in the state and the plan.
                    endpoint=pulumi.Output.secret(pagerduty_cloudwatch_url),
                    endpoint_auto_confirms=True,
                    opts=here,
                )
            )
        for index, address in enumerate(settings.email_to):
            self.subscriptions.append(
                aws.sns.TopicSubscription(
                    f"{name}-email-{index}", topic=self.topic.arn, protocol="email", endpoint=address, opts=here
                )
            )

        self.health_checks = {}
        self.probe_alarms = {}
        for probe in probes(domain):
            check = aws.route53.HealthCheck(
                f"{name}-{probe.key}",
                type="HTTPS",
                fqdn=probe.fqdn,
                port=443,
                resource_path=probe.path,
                request_interval=settings.probe_interval_seconds,
                failure_threshold=settings.failure_threshold,
                regions=list(settings.probe_regions),
                tags=ctx.tags(Name=f"{name}-{probe.key}"),
                opts=here,
            )
            self.health_checks[probe.key] = check
            self.probe_alarms[probe.key] = self._alarm(
                f"{name}-{probe.key}-unreachable",
                description=f"{probe.fqdn}{probe.path} stopped answering from outside (Route 53, "
                f"{len(settings.probe_regions)} regions). Runbook: {runbook}",
                namespace="AWS/Route53",
                metric="HealthCheckStatus",
                dimensions={"HealthCheckId": check.id},
                statistic="Minimum",
                comparison="LessThanThreshold",
                evaluation_periods=1,
                opts=here,
            )

        self.heartbeat_identity = AccessKeyIdentity(
            f"{name}-heartbeat",
            ctx=ctx,
            policy=heartbeat_policy(env),
            secrets=secrets,
            stored_as="heartbeat-access-key",
            purpose="AWS access key of the collector's heartbeat (PutMetricData in its namespace only)",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.heartbeat_alarm = self._alarm(
            f"{name}-heartbeat-missing",
            description=f"The metrics collector of {env} stopped sending its heartbeat: the host, its "
            f"Docker daemon or the monitoring itself is down. Runbook: {runbook}",
            namespace=namespace(env),
            metric=HEARTBEAT_METRIC,
            dimensions={"environment": env},
            statistic="SampleCount",
            comparison="LessThanThreshold",
            evaluation_periods=settings.heartbeat_missing_periods,
            opts=here,
        )
        self.register_outputs({"topic": self.topic.arn})

    def _alarm(
        self,
        name: str,
        *,
        description: str,
        namespace: str,
        metric: str,
        dimensions: dict[str, pulumi.Input[str]],
        statistic: str,
        comparison: str,
        evaluation_periods: int,
        opts: pulumi.ResourceOptions,
    ) -> aws.cloudwatch.MetricAlarm:
        """An alarm that pages on alarm and on recovery, and counts missing data as breaching:
        silence from outside is the failure this watches for."""
        return aws.cloudwatch.MetricAlarm(
            name,
            name=name,
            alarm_description=description,
            namespace=namespace,
            metric_name=metric,
            dimensions=dimensions,
            statistic=statistic,
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            threshold=1,
            comparison_operator=comparison,
            treat_missing_data="breaching",
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            opts=opts,
        )

    def heartbeat(self, settings: WatcherSettings, environment: str) -> Heartbeat:
        """What the collector needs to send the heartbeat."""
        return Heartbeat(
            credentials=self.heartbeat_identity.profile(HEARTBEAT_PROFILE),
            namespace=namespace(environment),
            interval_seconds=settings.heartbeat_interval_seconds,
        )
