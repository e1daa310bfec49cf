"""The guard rails of both stacks, as pulumi-policy policies.

Self-contained (the Pulumi CLI runs a pack from its own directory and virtualenv), so it repeats
the few facts it checks rather than importing the program. Property names are the engine's
(camelCase), as `pulumi preview` hands them to a pack and as `python -m ops.policy` does.

A value that is unknown during a preview (a new resource's id or ARN) is not judged: only what
is known can violate.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from policy_sentry.querying.actions import get_actions_for_service, get_privilege_info
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

# The names resources and labels are known by: a copy of components/lib/tokens.py's, since the pack
# runs without the program's imports (tests/policy/test_rules.py checks that the two agree).
LABEL_PREFIX = "io.audit-x"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT_IMAGE = "docker:index/image:Image"
BUCKET = "aws:s3/bucket:Bucket"
SECRET = "aws:secretsmanager/secret:Secret"
KMS_KEY = "aws:kms/key:Key"
VOLUME = "docker:index/volume:Volume"
IAM_USER_POLICY = "aws:iam/userPolicy:UserPolicy"
IAM_POLICIES = (IAM_USER_POLICY, "aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SNS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
STATEFUL = (VOLUME, BUCKET, SECRET, KMS_KEY)
DATA_SERVICES = {"postgres", "redis", "redpanda", "influxdb"}
# Host directories a Docker daemon's socket lives under (`/var/run` is a link to `/run`): mounting
# one of them, or the root, hands over the socket whatever its name.
SOCKET_DIRECTORIES = {"/", "/var", "/run", "/var/run"}
# The one service that may hold the socket: the read-only API proxy (components/platform/docker_api.py).
SOCKET_HOLDER = "docker-api"
_WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")

_PINNED_TAG = re.compile(r"^[a-z0-9][a-z0-9._/:-]*:(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PINNED_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")


def is_pinned(reference: str) -> bool:
    return bool(_PINNED_TAG.match(reference) or _PINNED_DIGEST.match(reference))


def labels_of(inputs: Mapping[str, Any]) -> dict[str, str]:
    """A Docker resource's `labels` input (`[{"label": ..., "value": ...}]`) as a mapping."""
    return {item["label"]: item["value"] for item in inputs.get("labels") or [] if "label" in item}


# --- resource policies -----------------------------------------------------------------------


def pinned_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == REMOTE_IMAGE:
        name = args.props.get("name")
        if isinstance(name, str) and not is_pinned(name):
            report(f"image {name!r} is not pinned to a version tag or digest", None)
    elif args.resource_type == BUILT_IMAGE:
        image_name = args.props.get("imageName")
        if isinstance(image_name, str) and image_name.endswith(":latest"):
            report(f"built image {image_name!r} is tagged latest", None)
        for arg, value in ((args.props.get("build") or {}).get("args") or {}).items():
            if arg.endswith("_IMAGE") and isinstance(value, str) and not is_pinned(value):
                report(f"built from {arg}={value!r}, which is not pinned", None)


def hardened_containers(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    props = args.props
    one_shot = bool(props.get("attach"))
    if props.get("privileged"):
        report("runs privileged", None)
    if not props.get("memory"):
        report("has no memory limit", None)
    log_opts = props.get("logOpts") or {}
    if props.get("logDriver") not in ("json-file", "local") or not {"max-size", "max-file"} <= set(log_opts):
        report("has no log rotation (json-file with max-size and max-file)", None)
    if not one_shot:
        if not (props.get("healthcheck") or {}).get("tests"):
            report("is long-running without a health check", None)
        if props.get("restart") not in ("unless-stopped", "always", "on-failure"):
            report(f"is long-running with restart policy {props.get('restart')!r}", None)


def reaches_the_daemon(host_path: str) -> bool:
    """Whether mounting `host_path` hands over a container daemon's API: any socket file (docker,
    containerd, podman: `*.sock`, wherever it is), a daemon's own run directory, or a directory
    above the sockets. `..` and trailing slashes do not hide one."""
    if not host_path:  # a named volume, not a host path
        return False
    path = posixpath.normpath("/" + host_path.lstrip("/"))
    return (
        path.endswith(".sock")
        or path in SOCKET_DIRECTORIES
        or path.startswith(("/run/docker", "/var/run/docker", "/run/containerd", "/var/run/containerd"))
    )


def _mounts_docker_socket(props: dict[str, Any]) -> list[bool]:
    """For each mount that reaches the Docker daemon (see reaches_the_daemon): whether it is read-only."""
    found = [
        bool(v.get("readOnly")) for v in props.get("volumes") or [] if reaches_the_daemon(str(v.get("hostPath") or ""))
    ]
    found += [
        bool(m.get("readOnly")) for m in props.get("mounts") or [] if reaches_the_daemon(str(m.get("source") or ""))
    ]
    return found


def proxy_allows_writes(props: dict[str, Any]) -> list[str]:
    """What in the proxy's uploaded HAProxy configuration would let a write through: it must
    deny every method but GET before any allow rule, and name no write method."""
    problems = []
    for upload in props.get("uploads") or []:
        content = str(upload.get("content") or "")
        if "frontend" not in content:
            continue
        lines = [line.split("#", 1)[0].strip() for line in content.splitlines()]
        rules = [line for line in lines if line.startswith("http-request")]
        if not rules or rules[0] != "http-request deny unless METH_GET":
            problems.append("its first rule is not `http-request deny unless METH_GET`")
        if rules and rules[-1] != "http-request deny":
            problems.append("its last rule is not `http-request deny`")
        problems += [f"it names {method}" for method in _WRITE_METHODS if any(method in rule for rule in rules)]
    return problems


def docker_socket(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    props = dict(args.props)
    if props.get("privileged"):
        report("is privileged: it can reach the Docker socket and the whole host", None)
    if props.get("networkMode") == "host":
        report("shares the host's network: the Docker API proxy's private network is bypassed", None)
    if props.get("pidMode") == "host":
        report("shares the host's process namespace: it can reach the daemon through /proc", None)
    added = (props.get("capabilities") or {}).get("adds") or []
    if added:
        report(f"adds capabilities {sorted(added)}: each widens what it can do to the host", None)
    mounts = _mounts_docker_socket(props)
    if not mounts:
        return
    service = labels_of(props).get(f"{LABEL_PREFIX}.service")
    if service != SOCKET_HOLDER:
        report(f"mounts the Docker socket but is {service!r}, not the read-only API proxy ({SOCKET_HOLDER})", None)
        return
    if not all(mounts):
        report("mounts the Docker socket writable", None)
    for problem in proxy_allows_writes(props):
        report(f"the Docker API proxy could let a write through: {problem}", None)


def published_ports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    ports = args.props.get("ports") or []
    if args.props.get("publishAllPorts"):
        report("publishes all its ports", None)
    if not ports:
        return
    service = labels_of(dict(args.props)).get(f"{LABEL_PREFIX}.service")
    external = sorted(int(p.get("external") or p.get("internal")) for p in ports)
    if service in DATA_SERVICES:
        report(f"is a data service ({service}) and publishes {external}", None)
    elif service != "edge":
        report(f"publishes {external}, but only the edge proxy publishes ports", None)
    elif not set(external) <= {80, 443}:
        report(f"the edge publishes {external}; only 80 and 443 are allowed", None)


def _statements(document: Any) -> Iterable[dict[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return []
    statements = (document or {}).get("Statement") or []
    return [statements] if isinstance(statements, dict) else statements


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


# --- IAM, judged by what a policy grants ------------------------------------------------------
#
# AWS's own catalogue of actions (through policy_sentry) expands every wildcard, so `s3:Put*` is
# judged as the 38 actions it grants (among them s3:PutBucketPolicy), not as a string.


@functools.cache
def _actions_of(service: str) -> dict[str, str]:
    """A service's actions, by lower-case name (IAM matches action names case-insensitively)."""
    return {action.lower(): action for action in get_actions_for_service(service)}


def expand_action(pattern: str) -> list[str]:
    """The actions an IAM action pattern grants; [] when AWS knows none of that name."""
    service, _, name = pattern.lower().partition(":")
    known = _actions_of(service)
    if "*" not in name and "?" not in name:
        return [known[pattern.lower()]] if pattern.lower() in known else []
    return sorted(action for lower, action in known.items() if fnmatch.fnmatchcase(lower, pattern.lower()))


@functools.cache
def _privilege(action: str) -> tuple[str, frozenset[str]]:
    """An action's access level (Read, List, Write, Tagging, Permissions management) and the
    resource types it acts on."""
    service, _, name = action.partition(":")
    info = get_privilege_info(service, name)
    return info["access_level"], frozenset(t for t in info["resource_types"] if t)


def destroys_backups(action: str) -> bool:
    """Whether an S3 action can destroy or shorten a stored object, or change a bucket's rules:
    a delete, the governance-lock bypass, or any write to the bucket itself (its policy,
    lifecycle, versioning, Object Lock configuration ...)."""
    service, _, name = action.partition(":")
    if service != "s3":
        return False
    level, resource_types = _privilege(action)
    return (
        name.startswith("Delete")
        or name == "BypassGovernanceRetention"
        or (level in ("Write", "Permissions management") and "bucket" in resource_types)
    )


# pgBackRest's expire deletes what falls out of its time window, under its own prefix, outside
# the Object Lock of the logical copies; versioning keeps what it deletes (components/backups/pitr.py).
PGBACKREST_PREFIX = "/pgbackrest/*"


def pgbackrest_expiring(policy_name: str, destroying: list[str], resources: list[str]) -> bool:
    """Whether a statement is the PITR repository's exception: pgBackRest's identity (its policy
    resource is named `<env>-pgbackrest-policy`), deleting objects, only under `pgbackrest/`."""
    return (
        policy_name.endswith("-pgbackrest-policy")
        and destroying == ["s3:DeleteObject"]
        and bool(resources)
        and all(resource.endswith(PGBACKREST_PREFIX) for resource in resources)
    )


# What disables or deletes a KMS key: everything encrypted with it (backups, secrets) is then lost.
KMS_KEY_DESTROYING = {
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:DeleteImportedKeyMaterial",
    "kms:DisableKeyRotation",
}


def least_privilege_iam(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Every identity here is a key on the Docker host: none may do everything, change who may
    do what, destroy a backup or the key it is encrypted with, however its actions are spelled.
    A bucket's policy is judged the same way: an Allow there grants as an identity policy does."""
    if args.resource_type not in (*IAM_POLICIES, BUCKET_POLICY):
        return
    for statement in _statements(args.props.get("policy")):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            # Allow + NotAction grants every action of every service but those named.
            excepted = ", ".join(_as_list(statement["NotAction"]))
            report(f'allows every action but {excepted} (NotAction): as broad as Action "*"', None)
            continue
        patterns, resources = _as_list(statement.get("Action")), _as_list(statement.get("Resource"))
        if "NotResource" in statement:
            resources = ["*"]  # every resource but those named: judged as every resource
        if "*" in patterns:
            report("allows every action" + (" on every resource" if "*" in resources else ""), None)
            continue
        granted: set[str] = set()
        for pattern in patterns:
            actions = expand_action(pattern)
            if not actions:
                report(f"grants {pattern}, which AWS does not know: a typo grants nothing and hides the intent", None)
            granted.update(actions)
        # One violation per mistake: what destroys a backup is said as that, not twice.
        managing = sorted(
            a for a in granted if _privilege(a)[0] == "Permissions management" and not destroys_backups(a)
        )
        if managing:
            report(f"grants permissions management ({', '.join(managing)}): it could change who may do what", None)
        destroying = sorted(a for a in granted if destroys_backups(a))
        if destroying and pgbackrest_expiring(args.name, destroying, resources):
            continue  # the one exception, exactly as components/backups/pitr.py grants it
        if destroying:
            report(f"can destroy or shorten stored objects, or change a bucket's rules: {', '.join(destroying)}", None)
        keys = sorted(a for a in granted if a in KMS_KEY_DESTROYING)
        if keys:
            report(f"can disable or delete a KMS key, and so everything encrypted with it: {', '.join(keys)}", None)


# --- staging's seed: the one thing of prod's staging may read (components/backups/staging_seed.py)

SEED_PREFIX = "staging-seed/"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
_S3_ARN = "arn:aws:s3:::"


@dataclasses.dataclass(frozen=True)
class SeedSource:
    """What another stack exports for staging (its `stagingSeed` output, read by a StackReference)."""

    bucket_arn: str
    prefix: str
    key_arn: str


def seed_sources(resources: Iterable[PolicyResource]) -> list[SeedSource]:
    found = []
    for reference in (r for r in resources if r.resource_type == STACK_REFERENCE):
        exported = ((reference.props.get("outputs") or {}).get("stagingSeed")) or {}
        if exported.get("bucketArn") and exported.get("prefix") and exported.get("kmsKeyArn"):
            found.append(SeedSource(exported["bucketArn"], exported["prefix"], exported["kmsKeyArn"]))
    return found


@dataclasses.dataclass(frozen=True)
class SeedBoundary:
    own_buckets: set[str]
    own_keys: set[str]
    sources: list[SeedSource]

    def problems(self, statement: dict[str, Any]) -> Iterable[str]:
        """What one Allow statement grants beyond the boundary (see staging_seed_boundary)."""
        actions = {a for pattern in _as_list(statement.get("Action")) for a in expand_action(pattern)}
        for resource in _as_list(statement.get("Resource")):
            if resource == "*":
                if any(a.startswith(("s3:", "kms:")) for a in actions):
                    yield "grants S3 or KMS actions on every resource, other environments' included"
            elif resource.startswith("arn:aws:kms:") and resource not in self.own_keys:
                yield from self._foreign_key(resource, actions)
            elif resource.startswith(_S3_ARN):
                bucket, _, path = resource.partition("/")
                if bucket in self.own_buckets:
                    yield from self._own_bucket(resource, bucket, path, actions)
                else:
                    yield from self._foreign_bucket(resource, bucket, path, actions, statement)

    def _foreign_key(self, resource: str, actions: set[str]) -> Iterable[str]:
        if resource not in {source.key_arn for source in self.sources}:
            yield f"may use {resource}, a key of another environment that is not its exported seed key"
        extra = sorted(a for a in actions if a.startswith("kms:") and a != "kms:Decrypt")
        if extra:
            yield f"may {', '.join(extra)} with another environment's key: only kms:Decrypt (of its seeds)"

    @staticmethod
    def _own_bucket(resource: str, bucket: str, path: str, actions: set[str]) -> Iterable[str]:
        # Only the seed job writes where staging reads: a grant that covers the prefix names it.
        writes = _s3_actions(actions, ("Write",))
        if writes and path and fnmatch.fnmatchcase(f"{SEED_PREFIX}seed.dump", path) and path != f"{SEED_PREFIX}*":
            yield f"may write {resource}, which covers {SEED_PREFIX}: name {bucket}/{SEED_PREFIX}* alone"

    def _foreign_bucket(
        self, resource: str, bucket: str, path: str, actions: set[str], statement: dict[str, Any]
    ) -> Iterable[str]:
        prefixes = [source.prefix for source in self.sources if source.bucket_arn == bucket]
        if not prefixes:
            yield f"reaches {bucket}, a bucket of another environment that exports no seeds"
            return
        beyond_reading = _s3_actions(actions, ("Write", "Tagging", "Permissions management"))
        if beyond_reading:
            yield f"may {', '.join(beyond_reading)} in {bucket}, another environment's bucket"
        if path and not any(path.startswith(prefix) for prefix in prefixes):
            yield f"reads {resource}: only {', '.join(prefixes)} may be read in another environment's bucket"
        if not path:
            listed = _as_list(((statement.get("Condition") or {}).get("StringLike") or {}).get("s3:prefix"))
            if not listed or not all(any(p.startswith(prefix) for prefix in prefixes) for p in listed):
                yield f"lists {bucket}, another environment's bucket, beyond {', '.join(prefixes)}"


def _s3_actions(actions: Iterable[str], levels: tuple[str, ...]) -> list[str]:
    return sorted(a for a in actions if a.startswith("s3:") and _privilege(a)[0] in levels)


def staging_seed_boundary(args: StackValidationArgs, report: ReportViolation) -> None:
    """Across the two stacks, only masked seeds leave prod. In the stack whose bucket it is, a
    grant that can write under `staging-seed/` names that prefix exactly (only the seed job
    writes there). Another stack's bucket is reached only where that stack exports seeds (its
    `stagingSeed` output, through a StackReference), only to list and read their prefix, and its
    KMS key only to decrypt, and only the exported seed key: never its environment's own key."""

    def arns(type_: str) -> set[str]:
        return {str(r.props.get("arn")) for r in args.resources if r.resource_type == type_ and r.props.get("arn")}

    boundary = SeedBoundary(arns(BUCKET), arns(KMS_KEY), seed_sources(args.resources))
    for policy in (r for r in args.resources if r.resource_type in IAM_POLICIES):
        try:
            document = policy.props.get("policy")
        except UnknownValueError:
            continue  # a document unknown in a first preview: least-privilege-iam says it could not run
        for statement in _statements(document):
            if statement.get("Effect") == "Allow":
                for problem in boundary.problems(statement):
                    report(f"{policy.name} {problem}", policy.urn)


def secrets_encrypted_with_a_recovery_window(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SECRET:
        return
    minimum = int((args.get_config() or {}).get("minimumRecoveryWindowDays", 7))
    # No key named at all is the account's default key too. (A key still being created is
    # unknown during a preview: the SDK skips the check rather than report it.)
    if not args.props.get("kmsKeyId"):
        report("is encrypted with the account's default key, not the environment's KMS key", None)
    window = args.props.get("recoveryWindowInDays")
    if isinstance(window, (int, float)) and window < minimum:
        report(f"has a recovery window of {window:g} days; at least {minimum} required", None)


# --- stack policies --------------------------------------------------------------------------


def _by_parent(resources: Iterable[PolicyResource]) -> dict[str, list[PolicyResource]]:
    groups: dict[str, list[PolicyResource]] = defaultdict(list)
    for resource in resources:
        groups[resource.parent.urn if resource.parent else ""].append(resource)
    return groups


def _denies_plain_http(statement: dict[str, Any]) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    return statement.get("Effect") == "Deny" and condition.get("aws:SecureTransport") == "false"


def hardened_buckets(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every bucket is versioned, KMS-encrypted, private, TLS-only, has lifecycle rules and Object
    Lock, by the resources declared beside it (its component's children)."""
    for siblings in _by_parent(args.resources).values():
        for bucket in (r for r in siblings if r.resource_type == BUCKET):
            kinds = {r.resource_type.rsplit(":", 1)[-1]: r.props for r in siblings}
            name = bucket.props.get("bucket", bucket.name)

            def missing(what: str, name: str = name, urn: str = bucket.urn) -> None:
                report(f"bucket {name} {what}", urn)

            versioning = kinds.get("BucketVersioning", {}).get("versioningConfiguration") or {}
            if versioning.get("status") != "Enabled":
                missing("is not versioned")
            rules = kinds.get("BucketServerSideEncryptionConfiguration", {}).get("rules") or [{}]
            default = rules[0].get("applyServerSideEncryptionByDefault") or {}
            if default.get("sseAlgorithm") != "aws:kms":
                missing("is not encrypted with KMS")
            block = kinds.get("BucketPublicAccessBlock", {})
            flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
            if not all(block.get(flag) is True for flag in flags):
                missing("does not block public access")
            policy = kinds.get("BucketPolicy", {}).get("policy", "")
            if isinstance(policy, str) and not any(_denies_plain_http(s) for s in _statements(policy)):
                missing("does not deny requests without TLS")
            if not (kinds.get("BucketLifecycleConfiguration", {}).get("rules")):
                missing("has no lifecycle rules")
            lock = kinds.get("BucketObjectLockConfiguration", {})
            if lock.get("objectLockEnabled") != "Enabled":
                missing("has no Object Lock: a stolen key could destroy what it holds")
                continue
            default_days = (((lock.get("rule") or {}).get("defaultRetention")) or {}).get("days")
            if not default_days:
                missing("has no default retention: what pgBackRest writes is not locked")
            for problem in lifecycle_problems(
                kinds.get("BucketLifecycleConfiguration", {}).get("rules") or [], default_days or 0
            ):
                missing(problem)


def lifecycle_problems(rules: list[dict[str, Any]], default_days: int) -> list[str]:
    """A lifecycle rule that removes what the locks protect before its time: noncurrent versions
    (what a delete or an overwrite hid) expired before the default retention has passed, or
    current objects expired by age where nothing released them (everything, or pgBackRest's
    repository): one problem per rule."""
    problems = []
    for rule in rules:
        if rule.get("status") != "Enabled":
            continue
        rule_filter = rule.get("filter") or {}
        combined = rule_filter.get("and") or {}
        prefix = str(rule_filter.get("prefix", combined.get("prefix", "")) or "")
        tagged = bool(combined.get("tags") or rule_filter.get("tag"))
        noncurrent = (rule.get("noncurrentVersionExpiration") or {}).get("noncurrentDays")
        expiration = (rule.get("expiration") or {}).get("days")
        name = rule.get("id", "?")
        if noncurrent is not None and int(noncurrent) < default_days:
            problems.append(
                f"expires noncurrent versions after {noncurrent} days (rule {name}), before the "
                f"default retention of {default_days} days: a hidden backup goes early"
            )
        elif expiration and not tagged and (prefix == "" or prefix.startswith("pgbackrest")):
            where = "pgBackRest's repository" if prefix else "every object"
            problems.append(f"expires {where} after {expiration} days by age (rule {name}): nothing released it")
    return problems


def _critical_receivers(resources: Iterable[PolicyResource]) -> list[str] | None:
    """The receiver types of the critical contact point Grafana is provisioned with, or None
    when no Grafana is declared."""
    for resource in resources:
        # Reads only what it judges: a value unknown during a preview elsewhere stops nothing.
        if resource.resource_type != CONTAINER:
            continue
        props = dict(resource.props)
        if labels_of(props).get(f"{LABEL_PREFIX}.service") != "grafana":
            continue
        for upload in props.get("uploads") or []:
            if not str(upload.get("file", "")).endswith("/alerting/audit-x.yaml"):
                continue
            document = yaml.safe_load(str(upload.get("content") or "")) or {}
            for point in document.get("contactPoints") or []:
                if str(point.get("name", "")).endswith("-critical"):
                    return [str(r.get("type")) for r in point.get("receivers") or []]
    return None


def watched_from_outside(args: StackValidationArgs, report: ReportViolation) -> None:
    """Where the stack requires it (prod): Route 53 probes of the public endpoints, an alarm on
    the collector's heartbeat that counts silence as failure, and someone subscribed to the topic."""
    if not (args.get_config() or {}).get("required", False):
        return
    judged = {
        HEALTH_CHECK,
        METRIC_ALARM,
        SNS_SUBSCRIPTION,
    }
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in args.resources:
        if resource.resource_type in judged:  # only these: an unknown elsewhere stops nothing
            by_type[resource.resource_type].append(dict(resource.props))
    probes = [p for p in by_type[HEALTH_CHECK] if p.get("type") == "HTTPS"]
    if not any(p.get("resourcePath") == "/health" for p in probes):
        report("nothing probes the app's /health from outside the host (Route 53 health check)", None)
    heartbeat = [
        a
        for a in by_type[METRIC_ALARM]
        if str(a.get("namespace", "")).startswith("audit-x/") and a.get("treatMissingData") == "breaching"
    ]
    if not heartbeat:
        report("no alarm fires when the collector's heartbeat stops (missing data as breaching)", None)
    if not by_type[SNS_SUBSCRIPTION]:
        report("nobody is subscribed to the external watcher's topic", None)


def critical_alerts_page_someone(args: StackValidationArgs, report: ReportViolation) -> None:
    receivers = _critical_receivers(args.resources)
    if receivers is not None and "pagerduty" not in receivers:
        report(
            f"critical alerts reach {', '.join(receivers) or 'nothing'} but page nobody: set "
            "`pulumi config set --secret pagerdutyRoutingKey <key>`",
            None,
        )


def stateful_protected(args: StackValidationArgs, report: ReportViolation) -> None:
    if not (args.get_config() or {}).get("required", False):
        return
    for resource in args.resources:
        if resource.resource_type in STATEFUL and not resource.opts.protect:
            report(f"{resource.name} holds state and is not protected", resource.urn)


def one_key_per_environment(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every secret is encrypted with a KMS key declared in this stack, and all with the same one."""
    key_arns = {r.props.get("arn") for r in args.resources if r.resource_type == KMS_KEY} - {None}
    used: set[str] = set()
    for secret in (r for r in args.resources if r.resource_type == SECRET):
        key = secret.props.get("kmsKeyId")
        if isinstance(key, str) and key:
            used.add(key)
            if key_arns and key not in key_arns:
                report(f"{secret.props.get('name')} is encrypted with a key from outside this environment", secret.urn)
    if len(used) > 1:
        report(f"secrets use {len(used)} different KMS keys; one per environment expected", None)


POLICIES: list[Policy] = [
    ResourceValidationPolicy("pinned-images", "Images are pinned to a version tag or a digest.", pinned_images),
    ResourceValidationPolicy(
        "hardened-containers",
        "Containers have a health check, a restart policy, a memory limit and log rotation, and are not privileged.",
        hardened_containers,
    ),
    ResourceValidationPolicy(
        "docker-socket",
        "Only the Docker API proxy holds the Docker socket, and it lets no write through.",
        docker_socket,
    ),
    ResourceValidationPolicy(
        "published-ports", "Data services publish nothing; only the edge proxy publishes, 80 and 443.", published_ports
    ),
    ResourceValidationPolicy(
        "least-privilege-iam",
        "No identity may do everything, manage permissions, or destroy a backup, judged by what its actions grant.",
        least_privilege_iam,
    ),
    ResourceValidationPolicy(
        "secrets-encrypted",
        "Secrets use the environment's KMS key and keep a recovery window.",
        secrets_encrypted_with_a_recovery_window,
        config_schema=PolicyConfigSchema(
            properties={"minimumRecoveryWindowDays": {"type": "integer", "minimum": 0, "default": 7}}
        ),
    ),
    StackValidationPolicy(
        "hardened-buckets",
        "Buckets are versioned, KMS-encrypted, private, TLS-only, with lifecycle rules and Object Lock.",
        hardened_buckets,
    ),
    StackValidationPolicy(
        "staging-seed-boundary",
        "Only masked seeds leave prod: written under staging-seed/ alone, and all another stack may read.",
        staging_seed_boundary,
    ),
    StackValidationPolicy(
        "one-key-per-environment",
        "Every secret is encrypted with this environment's own KMS key.",
        one_key_per_environment,
    ),
    StackValidationPolicy(
        "stateful-protected",
        "Volumes, buckets, secrets and KMS keys are protected where the stack requires it.",
        stateful_protected,
        config_schema=PolicyConfigSchema(properties={"required": {"type": "boolean", "default": False}}),
    ),
    StackValidationPolicy(
        "watched-from-outside",
        "A lost host pages someone: external probes, a heartbeat alarm, a subscribed topic.",
        watched_from_outside,
        config_schema=PolicyConfigSchema(properties={"required": {"type": "boolean", "default": False}}),
    ),
    # Advisory: a stack may knowingly run without a pager (staging); the preview says so.
    StackValidationPolicy(
        "critical-alerts-page-someone",
        "Critical alerts reach a pager (PagerDuty), not only chat or e-mail.",
        critical_alerts_page_someone,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]

ENFORCEMENT = EnforcementLevel.MANDATORY
