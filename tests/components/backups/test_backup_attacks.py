"""What a stolen key from the host can do to the backups, tried for real.

moto's S3 server keeps the bucket (versioning, Object Lock and its default retention, enforced
by moto on deletes of a version) behind harness/iam_s3.py, which evaluates prod's declared IAM
policies for every request as AWS does, and enforces S3's rule that a lock's date never moves
earlier (moto does not). The bucket's lock configuration and the three policies are taken from
prod's plan. pgBackRest's repository holds a full backup and WAL as pgBackRest writes them
(plain PUTs, no lock of their own: the bucket's default retention locks them); the writer
holds a daily dump, locked as the runner locks it.

Each attack is made with pgBackRest's key, the writer's key, or both (the 4 containers that hold
pgBackRest's key and the runner's writer key are all on the host). Its result is either
refused (403 or 412) or harmless: a plain delete or an overwrite of a versioned object only
hides the version behind a newer one, and after every attack the reader (whose key is off the
host) still lists and reads every original version, byte for byte, under its original lock.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from components.lib.build import REPO_ROOT
from components.settings import load_settings
from harness.iam_s3 import IamFront, iam_s3_front
from harness.local_services import s3_server
from harness.mock_engine import Plan, load_stack_config, run_program
from runner.storage import BackupStore, Lock

pytestmark = pytest.mark.services

BUCKET = "audit-x-prod-backups-euw1"
FULL = "pgbackrest/backup/main/20261122-010000F/pg_data/base/16384/2619.gz"
WAL = "pgbackrest/archive/main/17-1/0000000100000000/000000010000000000000042-7d1f0c3a.gz"
BACKUP_INFO = "pgbackrest/backup/main/backup.info"
DUMP = "daily/postgres/audit_x_prod/2026-11-28T020000Z.dump"
ORIGINALS = (FULL, WAL, BACKUP_INFO, DUMP)
KEYS = {
    "administrator": "AKIAADMINISTRATOR001",
    "pgbackrest": "AKIAPGBACKREST000001",
    "writer": "AKIABACKUPWRITER0001",
    "reader": "AKIABACKUPREADER0001",
}


@dataclass
class World:
    front: IamFront
    plan: Plan
    clients: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)  # original key -> its version id
    digests: dict[str, str] = field(default_factory=dict)
    locks: dict[str, datetime] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in KEYS:
            return self.clients[name]
        raise AttributeError(name)


def policy(plan: Plan, identity: str) -> str:
    return plan.named(f"audit-x-prod-{identity}-policy").inputs["policy"]


def client(front: IamFront, identity: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=front.url,
        region_name="eu-west-1",
        aws_access_key_id=KEYS[identity],
        aws_secret_access_key="not-checked-by-moto",
    )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    plan = run_program("prod")
    with s3_server() as endpoint, iam_s3_front(endpoint) as front:
        front.register(
            KEYS["administrator"], "administrator", {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        )
        front.register(KEYS["pgbackrest"], "pgbackrest", policy(plan, "pgbackrest"))
        front.register(KEYS["writer"], "writer", policy(plan, "backup-writer"))
        front.register(KEYS["reader"], "reader", policy(plan, "backup-reader"))
        clients = {identity: client(front, identity) for identity in KEYS}
        admin = clients["administrator"]
        admin.create_bucket(
            Bucket=BUCKET,
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
            ObjectLockEnabledForBucket=True,
        )
        admin.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        lock = plan.named("audit-x-prod-backups-object-lock").inputs
        retention = lock["rule"]["defaultRetention"]
        admin.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": retention["mode"], "Days": retention["days"]}},
            },
        )
        world = World(front, plan, clients)
        # pgBackRest writes as pgBackRest does: plain PUTs; the bucket's default retention locks them.
        for key in (FULL, WAL, BACKUP_INFO):
            world.versions[key] = clients["pgbackrest"].put_object(
                Bucket=BUCKET, Key=key, Body=f"{key} as written".encode()
            )["VersionId"]
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
        world.versions[DUMP] = clients["writer"].put_object(
            Bucket=BUCKET,
            Key=DUMP,
            Body=b"the newest dump",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
            IfNoneMatch="*",
        )["VersionId"]
        for key in ORIGINALS:
            head = admin.head_object(Bucket=BUCKET, Key=key, VersionId=world.versions[key])
            world.locks[key] = head["ObjectLockRetainUntilDate"]
            world.digests[key] = _digest(admin, key, world.versions[key])
        yield world


def _digest(s3: Any, key: str, version: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key, VersionId=version)["Body"].read()).hexdigest()


def refused(call: Callable[[], Any]) -> str:
    """`refused` when S3 (or IAM before it) said no, `allowed` when it did what was asked."""
    try:
        call()
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status in (403, 412), error
        return "refused"
    return "allowed"


def retention_xml_days(days: int) -> dict[str, Any]:
    return {"Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(days=days)}


def lifecycle_expiring(prefix: str) -> dict[str, Any]:
    return {
        "Rules": [
            {
                "ID": "attack",
                "Status": "Enabled",
                "Filter": {"Prefix": prefix},
                "Expiration": {"Days": 1},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            }
        ]
    }


def everything_off(s3: Any) -> Callable[[], Any]:
    return lambda: s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in ORIGINALS], "Quiet": True}
    )


def open_policy() -> str:
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


# (who, what, the attack, its outcome). "hidden": it succeeded and only put a newer version or
# a delete marker in front of the original, which stays.
ATTACKS: list[tuple[str, str, Callable[[World], Callable[[], Any]], str]] = [
    (
        "pgbackrest",
        "delete the newest full backup",
        lambda w: lambda: w.pgbackrest.delete_object(Bucket=BUCKET, Key=FULL),
        "hidden",
    ),
    ("pgbackrest", "delete its WAL", lambda w: lambda: w.pgbackrest.delete_object(Bucket=BUCKET, Key=WAL), "hidden"),
    (
        "pgbackrest",
        "delete the whole repository at once",
        lambda w: (
            lambda: w.pgbackrest.delete_objects(
                Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in (FULL, WAL, BACKUP_INFO)], "Quiet": True}
            )
        ),
        "hidden",
    ),
    (
        "pgbackrest",
        "overwrite the WAL with junk",
        lambda w: lambda: w.pgbackrest.put_object(Bucket=BUCKET, Key=WAL, Body=b"junk"),
        "hidden",
    ),
    (
        "pgbackrest",
        "overwrite backup.info",
        lambda w: lambda: w.pgbackrest.put_object(Bucket=BUCKET, Key=BACKUP_INFO, Body=b"{}"),
        "hidden",
    ),
    (
        "pgbackrest",
        "delete the full backup's version",
        lambda w: lambda: w.pgbackrest.delete_object(Bucket=BUCKET, Key=FULL, VersionId=w.versions[FULL]),
        "refused",
    ),
    (
        "pgbackrest",
        "delete the WAL's version, bypassing governance",
        lambda w: (
            lambda: w.pgbackrest.delete_object(
                Bucket=BUCKET, Key=WAL, VersionId=w.versions[WAL], BypassGovernanceRetention=True
            )
        ),
        "refused",
    ),
    (
        "pgbackrest",
        "delete every version at once",
        lambda w: (
            lambda: w.pgbackrest.delete_objects(
                Bucket=BUCKET, Delete={"Objects": [{"Key": k, "VersionId": w.versions[k]} for k in (FULL, WAL)]}
            )
        ),
        "refused",
    ),
    (
        "pgbackrest",
        "shorten the full backup's lock",
        lambda w: (
            lambda: w.pgbackrest.put_object_retention(
                Bucket=BUCKET, Key=FULL, VersionId=w.versions[FULL], Retention=retention_xml_days(1)
            )
        ),
        "refused",
    ),
    (
        "pgbackrest",
        "write WAL locked for a day only",
        lambda w: (
            lambda: w.pgbackrest.put_object(
                Bucket=BUCKET,
                Key=WAL + ".short",
                Body=b"x",
                ObjectLockMode="GOVERNANCE",
                ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1),
            )
        ),
        "refused",
    ),
    (
        "pgbackrest",
        "put a legal hold nobody expects",
        lambda w: lambda: w.pgbackrest.put_object_legal_hold(Bucket=BUCKET, Key=FULL, LegalHold={"Status": "ON"}),
        "refused",
    ),
    (
        "pgbackrest",
        "expire pgbackrest/ by lifecycle",
        lambda w: (
            lambda: w.pgbackrest.put_bucket_lifecycle_configuration(
                Bucket=BUCKET, LifecycleConfiguration=lifecycle_expiring("pgbackrest/")
            )
        ),
        "refused",
    ),
    (
        "pgbackrest",
        "drop the default retention",
        lambda w: (
            lambda: w.pgbackrest.put_object_lock_configuration(
                Bucket=BUCKET, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
            )
        ),
        "refused",
    ),
    (
        "pgbackrest",
        "suspend versioning",
        lambda w: (
            lambda: w.pgbackrest.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
        ),
        "refused",
    ),
    (
        "pgbackrest",
        "open the bucket by policy",
        lambda w: lambda: w.pgbackrest.put_bucket_policy(Bucket=BUCKET, Policy=open_policy()),
        "refused",
    ),
    (
        "pgbackrest",
        "delete the bucket's policy (TLS only)",
        lambda w: lambda: w.pgbackrest.delete_bucket_policy(Bucket=BUCKET),
        "refused",
    ),
    (
        "pgbackrest",
        "delete the newest dump",
        lambda w: lambda: w.pgbackrest.delete_object(Bucket=BUCKET, Key=DUMP),
        "refused",
    ),
    (
        "pgbackrest",
        "overwrite the newest dump",
        lambda w: lambda: w.pgbackrest.put_object(Bucket=BUCKET, Key=DUMP, Body=b"junk"),
        "refused",
    ),
    (
        "pgbackrest",
        "tag the newest dump released",
        lambda w: (
            lambda: w.pgbackrest.put_object_tagging(
                Bucket=BUCKET, Key=DUMP, Tagging={"TagSet": [{"Key": "audit-x-retention", "Value": "released"}]}
            )
        ),
        "refused",
    ),
    ("pgbackrest", "delete the bucket", lambda w: lambda: w.pgbackrest.delete_bucket(Bucket=BUCKET), "refused"),
    ("writer", "delete the newest dump", lambda w: lambda: w.writer.delete_object(Bucket=BUCKET, Key=DUMP), "refused"),
    (
        "writer",
        "delete the dump's version",
        lambda w: lambda: w.writer.delete_object(Bucket=BUCKET, Key=DUMP, VersionId=w.versions[DUMP]),
        "refused",
    ),
    (
        "writer",
        "shorten the dump's lock",
        lambda w: (
            lambda: w.writer.put_object_retention(
                Bucket=BUCKET, Key=DUMP, VersionId=w.versions[DUMP], Retention=retention_xml_days(1)
            )
        ),
        "refused",
    ),
    (
        "writer",
        "shorten it, bypassing governance",
        lambda w: (
            lambda: w.writer.put_object_retention(
                Bucket=BUCKET,
                Key=DUMP,
                VersionId=w.versions[DUMP],
                Retention=retention_xml_days(1),
                BypassGovernanceRetention=True,
            )
        ),
        "refused",
    ),
    ("writer", "delete everything at once", lambda w: everything_off(w.writer), "refused"),
    (
        "writer",
        "delete pgBackRest's full backup",
        lambda w: lambda: w.writer.delete_object(Bucket=BUCKET, Key=FULL),
        "refused",
    ),
    (
        "writer",
        "overwrite pgBackRest's WAL",
        lambda w: lambda: w.writer.put_object(Bucket=BUCKET, Key=WAL, Body=b"junk"),
        "refused",
    ),
    (
        "writer",
        "expire daily/ by lifecycle",
        lambda w: (
            lambda: w.writer.put_bucket_lifecycle_configuration(
                Bucket=BUCKET, LifecycleConfiguration=lifecycle_expiring("daily/")
            )
        ),
        "refused",
    ),
    (
        "writer",
        "drop the default retention",
        lambda w: (
            lambda: w.writer.put_object_lock_configuration(
                Bucket=BUCKET, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
            )
        ),
        "refused",
    ),
    (
        "writer",
        "suspend versioning",
        lambda w: (
            lambda: w.writer.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
        ),
        "refused",
    ),
    (
        "writer",
        "open the bucket by policy",
        lambda w: lambda: w.writer.put_bucket_policy(Bucket=BUCKET, Policy=open_policy()),
        "refused",
    ),
    (
        "writer",
        "tag the newest dump released",
        lambda w: (
            lambda: w.writer.put_object_tagging(
                Bucket=BUCKET, Key=DUMP, Tagging={"TagSet": [{"Key": "audit-x-retention", "Value": "released"}]}
            )
        ),
        "refused",
    ),
    (
        "writer",
        "tag the dump's version released",
        lambda w: (
            lambda: w.writer.put_object_tagging(
                Bucket=BUCKET,
                Key=DUMP,
                VersionId=w.versions[DUMP],
                Tagging={"TagSet": [{"Key": "audit-x-retention", "Value": "released"}]},
            )
        ),
        "refused",
    ),
    (
        "writer",
        "overwrite the newest dump",
        lambda w: lambda: w.writer.put_object(Bucket=BUCKET, Key=DUMP, Body=b"junk"),
        "refused",
    ),
    (
        "writer",
        "overwrite it, asking If-None-Match",
        lambda w: lambda: w.writer.put_object(Bucket=BUCKET, Key=DUMP, Body=b"junk", IfNoneMatch="*"),
        "refused",
    ),
    ("writer", "overwrite it by a multipart upload", lambda w: lambda: _multipart_over(w.writer, DUMP), "refused"),
    (
        "writer",
        "overwrite it by a server-side copy",
        lambda w: (
            lambda: w.writer.copy_object(
                Bucket=BUCKET, Key=DUMP, CopySource={"Bucket": BUCKET, "Key": DUMP}, MetadataDirective="REPLACE"
            )
        ),
        "refused",
    ),
    (
        "writer",
        "lock the newest dump until 2099",
        lambda w: (
            lambda: w.writer.put_object_retention(
                Bucket=BUCKET, Key=DUMP, VersionId=w.versions[DUMP], Retention=retention_xml_days(365 * 73)
            )
        ),
        "refused",
    ),
    (
        "writer",
        "write junk locked until 2099",
        lambda w: (
            lambda: w.writer.put_object(
                Bucket=BUCKET,
                Key="monthly/postgres/audit_x_prod/2099-01-01T000000Z.dump",
                Body=b"junk",
                IfNoneMatch="*",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=365 * 73),
            )
        ),
        "refused",
    ),
    # Both keys together: pgBackRest's hides, the writer's cannot then remove what is hidden.
    (
        "both",
        "remove the delete marker pgBackRest's key put on the full backup",
        lambda w: lambda: _remove_markers(w, FULL),
        "refused",
    ),
]


def _multipart_over(s3: Any, key: str) -> None:
    """A multipart upload over an existing key, completed without If-None-Match."""
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=b"junk")
    try:
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
    finally:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)


def _remove_markers(world: World, key: str) -> None:
    world.pgbackrest.delete_object(Bucket=BUCKET, Key=key)
    markers = world.administrator.list_object_versions(Bucket=BUCKET, Prefix=key).get("DeleteMarkers", [])
    for marker in markers:
        world.writer.delete_object(Bucket=BUCKET, Key=key, VersionId=marker["VersionId"])


@pytest.mark.parametrize(("who", "what", "attack", "outcome"), ATTACKS, ids=[f"{a[0]}: {a[1]}" for a in ATTACKS])
def test_an_attack_with_a_key_from_the_host_destroys_nothing(
    world: World, who: str, what: str, attack: Callable[[World], Callable[[], Any]], outcome: str
) -> None:
    result = refused(attack(world))
    assert result == ("refused" if outcome == "refused" else "allowed"), f"{who} could {what}"
    # Whatever it did, the reader (off the host) lists and reads every original, under its lock.
    listed = world.reader.list_object_versions(Bucket=BUCKET, Prefix="pgbackrest/")["Versions"]
    listed += world.reader.list_object_versions(Bucket=BUCKET, Prefix="daily/")["Versions"]
    found = {(v["Key"], v["VersionId"]) for v in listed}
    for key in ORIGINALS:
        assert (key, world.versions[key]) in found, f"after '{what}', the original {key} is gone"
        assert _digest(world.reader, key, world.versions[key]) == world.digests[key]
        head = world.administrator.head_object(Bucket=BUCKET, Key=key, VersionId=world.versions[key])
        assert head["ObjectLockRetainUntilDate"] == world.locks[key]


def test_pgbackrests_objects_are_locked_past_the_window_pitr_promises(world: World) -> None:
    window = load_settings(load_stack_config("prod")).pitr.retention_days
    for key in (FULL, WAL, BACKUP_INFO):
        head = world.administrator.head_object(Bucket=BUCKET, Key=key, VersionId=world.versions[key])
        assert head["ObjectLockMode"] == "COMPLIANCE"
        # Written just now: locked for the window and the week before it, to the day.
        assert head["ObjectLockRetainUntilDate"].date() == (datetime.now(UTC) + timedelta(days=window + 7)).date()


def test_the_docs_count_the_attacks_this_test_makes() -> None:
    text = (REPO_ROOT / "docs" / "backup-restore.md").read_text().replace("\n", " ")
    hidden = sum(1 for attack in ATTACKS if attack[3] == "hidden")
    assert f"{len(ATTACKS)} attacks with the keys on the host" in text
    assert f"{len(ATTACKS) - hidden} are refused (403, or 412" in text
    assert f"{hidden}, with pgBackRest's key under `pgbackrest/`, are allowed and only hide" in text


def test_the_runners_own_writes_pass_as_the_writer(world: World) -> None:
    """What the runner does on the host, through the same front: a streamed copy (multipart,
    completed once), its manifest, the weekly copy (a multipart copy), a lock extended within
    the tier's cap. Nothing of it needs what the attacks above were refused."""
    store = BackupStore(world.writer, BUCKET, part_size=5 * 1024 * 1024)
    now = datetime.now(UTC).replace(microsecond=0)
    daily, weekly = (
        "daily/postgres/audit_x_prod/2026-11-29T020000Z.dump",
        "weekly/postgres/audit_x_prod/2026-11-29T020000Z.dump",
    )
    lock = Lock("COMPLIANCE", now + timedelta(days=7))
    result = store.upload_stream(
        daily,
        io.BytesIO(b"a day's dump" * 1_000_000),
        content_type="application/octet-stream",
        before_complete=lambda: None,
        lock=lock,
    )
    assert (result.size, result.parts) == (12_000_000, 3)
    store.put_json(daily.replace(".dump", ".manifest.json"), {"sha256": result.sha256}, lock=lock)
    store.copy(daily, weekly, lock=Lock("COMPLIANCE", now + timedelta(days=28)))
    store.extend_lock(daily, Lock("COMPLIANCE", now + timedelta(days=8)))
    assert store.locked_until(weekly) == now + timedelta(days=28)
    assert store.sha256_of(weekly)[0] == result.sha256
    # Written once: the same key again is refused, by S3's precondition.
    with pytest.raises(ClientError, match="PreconditionFailed"):
        store.put_json(daily.replace(".dump", ".manifest.json"), {"sha256": "other"}, lock=lock)
