"""The names resources and labels are known by, written once.

The program labels its containers with `LABEL_PREFIX`; the mock engine, the update model, the
operator commands and the tests find resources by these type tokens and read their labels with
`labels_of`. The policy pack keeps a copy of its own (it runs in the Pulumi CLI's policy host,
without the program's imports): tests/policy/test_rules.py checks that the copy still agrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LABEL_PREFIX = "io.audit-x"
# The package part of every component's type token (`audit-x:data:Postgres`).
COMPONENT_PREFIX = "audit-x:"

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
KMS_KEY = "aws:kms/key:Key"
KMS_ALIAS = "aws:kms/alias:Alias"
IAM_USER = "aws:iam/user:User"
IAM_USER_POLICY = "aws:iam/userPolicy:UserPolicy"
IAM_ACCESS_KEY = "aws:iam/accessKey:AccessKey"
IAM_POLICIES = (IAM_USER_POLICY, "aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SNS_TOPIC = "aws:sns/topic:Topic"
SNS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


def label(name: str) -> str:
    """`label("service")` -> `io.audit-x.service`."""
    return f"{LABEL_PREFIX}.{name}"


def labels_of(inputs: Mapping[str, Any]) -> dict[str, str]:
    """A Docker resource's `labels` input (`[{"label": ..., "value": ...}]`) as a mapping."""
    return {item["label"]: item["value"] for item in inputs.get("labels") or [] if "label" in item}
