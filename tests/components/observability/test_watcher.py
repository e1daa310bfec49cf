"""The external watcher (components/observability/watcher.py): what both stacks declare on AWS,
with the config's values, and moto's server accepting exactly those values through boto3.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
what it declares in us-east-1, with and without PagerDuty."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import boto3
import pulumi
import pytest

from components.lib import tokens
from components.observability.collector import HEARTBEAT_CREDENTIALS_FILE
from components.observability.watcher import (
    HEARTBEAT_METRIC,
    WATCH_REGION,
    ExternalWatcher,
    heartbeat_policy,
    topic_key_policy,
)
from components.settings import WatcherSettings, load_settings
from harness.local_services import aws_api_server
from harness.mock_engine import ACCOUNT_ID, DeclaredResource, Plan, load_stack_config, run_component, run_program
from tests.helpers import children, component_context, container, declared, secrets, uploaded

HEALTH_CHECK = tokens.HEALTH_CHECK
ALARM = tokens.METRIC_ALARM
TOPIC = tokens.SNS_TOPIC
SUBSCRIPTION = tokens.SNS_SUBSCRIPTION
PAGERDUTY_URL = "https://events.pagerduty.com/integration/0123456789abcdef0123456789abcdef/enqueue"


def of_type(plan: Plan, type_: str) -> dict[str, DeclaredResource]:
    return {r.name: r for r in plan.of_type(type_)}


def test_both_endpoints_are_probed_from_outside_with_the_configs_values(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    checks = of_type(plan, HEALTH_CHECK)
    assert {name: (c.inputs["fqdn"], c.inputs["resourcePath"]) for name, c in checks.items()} == {
        f"audit-x-{stack}-watcher-app": (settings.domain, "/health"),
        f"audit-x-{stack}-watcher-grafana": (f"grafana.{settings.domain}", "/api/health"),
    }
    for check in checks.values():
        assert (check.inputs["type"], check.inputs["port"]) == ("HTTPS", 443)
        assert check.inputs["requestInterval"] == settings.watcher.probe_interval_seconds
        assert check.inputs["failureThreshold"] == settings.watcher.failure_threshold
        assert check.inputs["regions"] == list(settings.watcher.probe_regions)


def test_every_alarm_lives_in_us_east_1_pages_on_alarm_and_recovery_and_counts_silence(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    alarms = of_type(plan, ALARM)
    assert set(alarms) == {
        f"audit-x-{stack}-watcher-{name}" for name in ("app-unreachable", "grafana-unreachable", "heartbeat-missing")
    }
    (provider,) = [r for r in plan.resources if r.name == f"audit-x-{stack}-watcher-{WATCH_REGION}"]
    assert provider.inputs["region"] == WATCH_REGION
    topic = of_type(plan, TOPIC)[f"audit-x-{stack}-watcher"]
    for alarm in alarms.values():
        assert alarm.provider is not None and alarm.provider.startswith(provider.urn)
        assert alarm.inputs["treatMissingData"] == "breaching"
        assert (
            alarm.inputs["alarmActions"]
            == alarm.inputs["okActions"]
            == [f"arn:aws:mock:eu-west-1:{ACCOUNT_ID}:{topic.name}"]
        )
        assert "docs/runbooks.md#the-host-is-unreachable" in alarm.inputs["alarmDescription"]
    heartbeat = alarms[f"audit-x-{stack}-watcher-heartbeat-missing"]
    assert (heartbeat.inputs["namespace"], heartbeat.inputs["metricName"]) == (f"audit-x/{stack}", HEARTBEAT_METRIC)
    assert heartbeat.inputs["evaluationPeriods"] == settings.watcher.heartbeat_missing_periods
    assert topic.provider is not None and topic.provider.startswith(provider.urn)


def test_the_topic_is_encrypted_with_a_key_of_the_environment_that_cloudwatch_may_use(plan: Plan, stack: str) -> None:
    topic = of_type(plan, TOPIC)[f"audit-x-{stack}-watcher"]
    key = next(r for r in plan.of_type(tokens.KMS_KEY) if r.name == f"audit-x-{stack}-watcher-key")
    assert topic.inputs["kmsMasterKeyId"] == f"arn:aws:kms:eu-west-1:{ACCOUNT_ID}:key/" + key.inputs.get(
        "keyId", topic.inputs["kmsMasterKeyId"].rsplit("/", 1)[1]
    )
    policy = json.loads(key.inputs["policy"])
    cloudwatch = next(s for s in policy["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"})
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert key.inputs["enableKeyRotation"] is True


def test_the_heartbeat_identity_may_put_metric_data_in_its_namespace_and_nothing_else(plan: Plan, stack: str) -> None:
    policy = json.loads(next(r for r in plan.of_type(tokens.IAM_USER_POLICY) if "heartbeat" in r.name).inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Action"] == "cloudwatch:PutMetricData"
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": f"audit-x/{stack}"}}
    assert statement["Effect"] == "Allow"


def test_the_collector_sends_the_heartbeat_with_those_credentials_as_a_file(plan: Plan, stack: str) -> None:
    collector = container(plan, "collector")
    config = tomllib.loads(uploaded(collector, "/etc/telegraf/telegraf.conf"))
    (cloudwatch,) = config["outputs"]["cloudwatch"]
    assert cloudwatch["region"] == WATCH_REGION
    assert cloudwatch["namespace"] == f"audit-x/{stack}"
    assert cloudwatch["shared_credential_file"] == HEARTBEAT_CREDENTIALS_FILE
    assert (cloudwatch["namepass"], cloudwatch["fieldinclude"]) == (["internal_agent"], ["metrics_gathered"])
    (internal,) = config["inputs"]["internal"]
    assert internal["interval"] == f"{load_settings(load_stack_config(stack)).watcher.heartbeat_interval_seconds}s"
    # The heartbeat does not go to InfluxDB.
    assert config["outputs"]["influxdb_v2"][0]["namedrop"] == ["internal_agent"]
    credentials = {u["file"]: u for u in collector.plain_inputs["uploads"]}[HEARTBEAT_CREDENTIALS_FILE]
    assert credentials["content"].startswith("[heartbeat]\naws_access_key_id = AKIA")
    assert (credentials["permissions"], credentials["owner"]) == ("0400", "999")


def test_pagerduty_is_subscribed_only_when_set_and_its_url_never_in_plain_text() -> None:
    without = run_program("prod")
    assert [r.inputs["protocol"] for r in without.of_type(SUBSCRIPTION)] == ["email"]
    plan = run_program("prod", secrets={"audit-x:pagerdutyCloudwatchUrl": PAGERDUTY_URL})
    subscriptions = {r.inputs["protocol"]: r for r in plan.of_type(SUBSCRIPTION)}
    assert set(subscriptions) == {"https", "email"}
    assert subscriptions["https"].inputs["endpoint"] == "[secret]"
    assert subscriptions["https"].plain_inputs["endpoint"] == PAGERDUTY_URL
    masked = json.dumps([r.inputs for r in plan.resources]) + json.dumps(plan.outputs)
    assert "0123456789abcdef0123456789abcdef" not in masked


def test_an_invalid_pagerduty_url_names_the_key() -> None:
    with pytest.raises(
        Exception, match="pagerdutyCloudwatchUrl = \\[secret\\]: expected PagerDuty's CloudWatch integration URL"
    ):
        run_program("prod", secrets={"audit-x:pagerdutyCloudwatchUrl": "https://example.invalid/hook"})


@pytest.mark.services
def test_moto_accepts_exactly_what_the_program_declares(plan: Plan, stack: str, tmp_path: Path) -> None:
    checks, alarms = of_type(plan, HEALTH_CHECK), of_type(plan, ALARM)
    topic = of_type(plan, TOPIC)[f"audit-x-{stack}-watcher"]
    with aws_api_server() as endpoint:
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=WATCH_REGION)
        kms, sns, route53, cloudwatch, iam = (
            session.client(name, endpoint_url=endpoint) for name in ("kms", "sns", "route53", "cloudwatch", "iam")
        )
        key = kms.create_key(Policy=topic_key_policy(ACCOUNT_ID), Description="watcher")["KeyMetadata"]
        topic_arn = sns.create_topic(Name=topic.inputs["name"], Attributes={"KmsMasterKeyId": key["Arn"]})["TopicArn"]
        assert sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["KmsMasterKeyId"] == key["Arn"]
        for subscription in plan.of_type(SUBSCRIPTION):
            sns.subscribe(
                TopicArn=topic_arn,
                Protocol=subscription.inputs["protocol"],
                Endpoint=subscription.plain_inputs["endpoint"],
            )
        check_ids = {}
        for name, check in checks.items():
            config = {
                "Type": check.inputs["type"],
                "FullyQualifiedDomainName": check.inputs["fqdn"],
                "Port": check.inputs["port"],
                "ResourcePath": check.inputs["resourcePath"],
                "RequestInterval": check.inputs["requestInterval"],
                "FailureThreshold": check.inputs["failureThreshold"],
                "Regions": check.inputs["regions"],
            }
            created = route53.create_health_check(CallerReference=name, HealthCheckConfig=config)["HealthCheck"]
            assert {k: created["HealthCheckConfig"][k] for k in config} == config
            check_ids[name.rsplit("-", 1)[1]] = created["Id"]
        for name, alarm in alarms.items():
            dimensions = alarm.plain_inputs["dimensions"]
            if "HealthCheckId" in dimensions:
                dimensions = {"HealthCheckId": check_ids[name.removeprefix(f"audit-x-{stack}-watcher-").split("-")[0]]}
            cloudwatch.put_metric_alarm(
                AlarmName=alarm.inputs["name"],
                AlarmDescription=alarm.inputs["alarmDescription"],
                Namespace=alarm.inputs["namespace"],
                MetricName=alarm.inputs["metricName"],
                Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
                Statistic=alarm.inputs["statistic"],
                Period=alarm.inputs["period"],
                EvaluationPeriods=alarm.inputs["evaluationPeriods"],
                DatapointsToAlarm=alarm.inputs["datapointsToAlarm"],
                Threshold=float(alarm.inputs["threshold"]),
                ComparisonOperator=alarm.inputs["comparisonOperator"],
                TreatMissingData=alarm.inputs["treatMissingData"],
                AlarmActions=[topic_arn],
                OKActions=[topic_arn],
            )
        described = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
        assert set(described) == {a.inputs["name"] for a in alarms.values()}
        assert {a["TreatMissingData"] for a in described.values()} == {"breaching"}
        # The heartbeat identity's policy is a valid IAM policy document.
        iam.create_user(UserName="heartbeat")
        iam.put_user_policy(UserName="heartbeat", PolicyName="heartbeat", PolicyDocument=heartbeat_policy(stack))
        cloudwatch.put_metric_data(
            Namespace=f"audit-x/{stack}",
            MetricData=[
                {"MetricName": HEARTBEAT_METRIC, "Dimensions": [{"Name": "environment", "Value": stack}], "Value": 1}
            ],
        )
        metrics = cloudwatch.list_metrics(Namespace=f"audit-x/{stack}")["Metrics"]
        assert [m["MetricName"] for m in metrics] == [HEARTBEAT_METRIC]


# --- built alone -------------------------------------------------------------------------------

WATCHER = WatcherSettings(
    probe_interval_seconds=10,
    failure_threshold=4,
    probe_regions=["us-west-2", "eu-west-1", "sa-east-1"],
    heartbeat_interval_seconds=20,
    heartbeat_missing_periods=3,
    email_to=["oncall@example.org", "ops@example.org"],
)
RUNBOOK = "https://docs.example.org/runbooks.md#the-host-is-unreachable"


def build_watcher(*, pagerduty: bool = True) -> Plan:
    def declare() -> None:
        ctx = component_context()
        watcher = ExternalWatcher(
            "audit-x-test-watcher",
            WATCHER,
            ctx=ctx,
            domain="audit.example.org",
            secrets=secrets(ctx),
            pagerduty_cloudwatch_url=pulumi.Output.secret(PAGERDUTY_URL) if pagerduty else None,
            kms_deletion_window_days=8,
            runbook_base_url="https://docs.example.org/runbooks.md",
        )
        heartbeat = watcher.heartbeat(WATCHER, ctx.environment)
        pulumi.export(
            "heartbeat", [heartbeat.namespace, heartbeat.interval_seconds, heartbeat.region, heartbeat.profile]
        )

    return run_component(declare)


def test_watcher_alone_declares_its_key_topic_probes_alarms_and_heartbeat_in_us_east_1() -> None:
    plan = build_watcher()
    name = "audit-x-test-watcher"
    assert children(plan, name) == sorted(
        [
            ("pulumi:providers:aws", f"{name}-us-east-1"),
            (tokens.KMS_KEY, f"{name}-key"),
            (TOPIC, name),
            (SUBSCRIPTION, f"{name}-pagerduty"),
            (SUBSCRIPTION, f"{name}-email-0"),
            (SUBSCRIPTION, f"{name}-email-1"),
            (HEALTH_CHECK, f"{name}-app"),
            (HEALTH_CHECK, f"{name}-grafana"),
            (ALARM, f"{name}-app-unreachable"),
            (ALARM, f"{name}-grafana-unreachable"),
            (ALARM, f"{name}-heartbeat-missing"),
            ("audit-x:platform:AccessKeyIdentity", f"{name}-heartbeat"),
        ]
    )
    provider = declared(plan, "pulumi:providers:aws", f"{name}-us-east-1")
    assert provider.inputs["region"] == "us-east-1"
    on_aws = [r for r in plan.resources if r.parent == name and r.type.startswith("aws:")]
    assert len(on_aws) == 10
    for resource in on_aws:
        assert resource.provider is not None and resource.provider.startswith(provider.urn), resource.name
    key = declared(plan, tokens.KMS_KEY, f"{name}-key")
    assert (key.inputs["deletionWindowInDays"], key.inputs["enableKeyRotation"]) == (8, True)
    # The account (the caller's, asked through the us-east-1 provider) administers it; CloudWatch uses it.
    assert [s["Principal"] for s in json.loads(key.inputs["policy"])["Statement"]] == [
        {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
        {"Service": "cloudwatch.amazonaws.com"},
    ]
    topic = declared(plan, TOPIC, name)
    assert topic.inputs["kmsMasterKeyId"] == key.plain_outputs["arn"]


def test_both_endpoints_are_probed_from_the_regions_and_pace_it_is_given() -> None:
    plan = build_watcher()
    topic_arn = declared(plan, TOPIC, "audit-x-test-watcher").plain_outputs["arn"]
    for key, fqdn, path in (
        ("app", "audit.example.org", "/health"),
        ("grafana", "grafana.audit.example.org", "/api/health"),
    ):
        check = declared(plan, HEALTH_CHECK, f"audit-x-test-watcher-{key}")
        assert {
            k: check.inputs[k]
            for k in ("type", "fqdn", "port", "resourcePath", "requestInterval", "failureThreshold", "regions")
        } == {
            "type": "HTTPS",
            "fqdn": fqdn,
            "port": 443,
            "resourcePath": path,
            "requestInterval": 10,
            "failureThreshold": 4,
            "regions": ["us-west-2", "eu-west-1", "sa-east-1"],
        }
        alarm = declared(plan, ALARM, f"audit-x-test-watcher-{key}-unreachable")
        assert alarm.inputs["dimensions"] == {"HealthCheckId": f"audit-x-test-watcher-{key}-id"}
        assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == ("AWS/Route53", "HealthCheckStatus")
        assert alarm.inputs["alarmDescription"] == (
            f"{fqdn}{path} stopped answering from outside (Route 53, 3 regions). Runbook: {RUNBOOK}"
        )
        assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"] == [topic_arn]
        assert alarm.inputs["treatMissingData"] == "breaching"


def test_the_heartbeat_alarm_counts_missing_minutes_in_the_environments_namespace() -> None:
    plan = build_watcher()
    alarm = declared(plan, ALARM, "audit-x-test-watcher-heartbeat-missing")
    assert {
        k: alarm.inputs[k]
        for k in ("namespace", "metricName", "dimensions", "evaluationPeriods", "datapointsToAlarm", "period")
    } == {
        "namespace": "audit-x/test",
        "metricName": "internal_agent_metrics_gathered",
        "dimensions": {"environment": "test"},
        "evaluationPeriods": 3,
        "datapointsToAlarm": 3,
        "period": 60,
    }
    policy = json.loads(
        declared(plan, tokens.IAM_USER_POLICY, "audit-x-test-watcher-heartbeat-policy").inputs["policy"]
    )
    (statement,) = policy["Statement"]
    assert (statement["Action"], statement["Condition"]) == (
        "cloudwatch:PutMetricData",
        {"StringEquals": {"cloudwatch:namespace": "audit-x/test"}},
    )
    assert declared(plan, tokens.SECRET, "audit-x-test-secret-heartbeat-access-key").inputs["name"] == (
        "audit-x/test/heartbeat-access-key"
    )
    assert plan.outputs["heartbeat"] == ["audit-x/test", 20, "us-east-1", "heartbeat"]


def test_pagerduty_is_subscribed_only_when_given_and_masked_and_each_address_by_email() -> None:
    plan = build_watcher()
    pagerduty = declared(plan, SUBSCRIPTION, "audit-x-test-watcher-pagerduty")
    assert (pagerduty.inputs["protocol"], pagerduty.inputs["endpoint"]) == ("https", "[secret]")
    assert pagerduty.plain_inputs["endpoint"] == PAGERDUTY_URL
    emails = {
        r.name: (r.inputs["protocol"], r.inputs["endpoint"]) for r in plan.of_type(SUBSCRIPTION) if "-email-" in r.name
    }
    assert emails == {
        "audit-x-test-watcher-email-0": ("email", "oncall@example.org"),
        "audit-x-test-watcher-email-1": ("email", "ops@example.org"),
    }
    without = build_watcher(pagerduty=False)
    assert sorted(r.name for r in without.of_type(SUBSCRIPTION)) == [
        "audit-x-test-watcher-email-0",
        "audit-x-test-watcher-email-1",
    ]
