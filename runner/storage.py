"""S3, as the backup runner uses it: streamed multipart uploads, copies, manifests, streamed reads.

A dump is never written to local disk: the producer's stdout is read in parts of a fixed size,
each part hashed into the stream's SHA-256 and uploaded while the next one is read, into one of
`max_in_flight` reused buffers. Memory is therefore bounded by part size x max_in_flight,
whatever the database's size. Any failure aborts the multipart upload, so no partial object is
ever visible. Transient S3 errors (5xx, throttling, dropped connections) are retried with
exponential backoff by botocore's standard retry mode.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from runner.layout import MANIFEST_SUFFIX

log = logging.getLogger("backup.storage")

READ_CHUNK = 1024 * 1024
# Part buffers a streamed upload holds: one being read while the others upload. With three, the
# reader keeps draining the dump for the first ~1 s, while the S3 client is still loading (the
# first upload started 1.0 to 1.3 s into a new runner process, measured), and when S3 lags.
PART_BUFFERS = 3


# The tag that hands a copy to the bucket's lifecycle rule (components/backups/bucket.py): only
# the runner sets it, on a copy that is past its count and whose lock has run out.
RELEASE_TAG = ("audit-x-retention", "released")
# Every object the runner creates under a tier is written once: `If-None-Match: *` makes S3 refuse
# it (412) where the key exists, and the writer's policy refuses a write without it
# (components/backups/runner.py), so a key on the host never writes over a copy.
WRITE_ONCE = "*"
# A server-side copy's parts: S3 copies at most 5 GiB a part; fewer, larger parts cost fewer calls.
COPY_PART_BYTES = 1024 * 1024 * 1024


class StorageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Lock:
    """S3 Object Lock retention for one object version: until then nobody may delete it or, in
    COMPLIANCE mode, shorten the date (in GOVERNANCE mode only with a bypass permission)."""

    mode: str
    until: datetime

    def put_args(self) -> dict[str, Any]:
        return {"ObjectLockMode": self.mode, "ObjectLockRetainUntilDate": self.until}


# S3 takes a locked object only with a checksum of its body (Content-MD5 or a flexible checksum,
# for a put and for each part of a multipart upload); SHA-256, computed by botocore.
CHECKSUM = "SHA256"


def _lock_args(lock: Lock | None) -> dict[str, Any]:
    return lock.put_args() | {"ChecksumAlgorithm": CHECKSUM} if lock else {}


@dataclass(frozen=True)
class UploadResult:
    key: str
    size: int
    sha256: str
    parts: int


def s3_client(region: str, endpoint_url: str | None, profile: str | None = None, max_attempts: int = 8) -> Any:
    """An S3 client with retries; `profile` picks an identity from the shared credentials file."""
    # Imported here: boto3 and S3's service model take ~0.3 s to load, which the runner does in
    # the background while the dump starts (runner/cli.py), and the health check never needs.
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=120,
        # Checksums only where S3 requires them, so any S3 API implementation accepts our uploads.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.Session(profile_name=profile).client("s3", endpoint_url=endpoint_url, config=config)


def read_into(stream: IO[bytes], buffer: bytearray) -> int:
    """Fill `buffer` from `stream`; fewer bytes only at end of stream (pipes read short)."""
    filled = 0
    with memoryview(buffer) as view:
        while filled < len(buffer):
            count = stream.readinto(view[filled : filled + READ_CHUNK])  # pyright: ignore[reportAttributeAccessIssue]
            if not count:
                break
            filled += count
    return filled


class BackupStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        part_size: int,
        max_in_flight: int = PART_BUFFERS,
        kms_key_id: str | None = None,
    ) -> None:
        """`client` is an S3 client, or a Future of one still being built; it is waited for on first use.
        `kms_key_id`: what this store writes is encrypted with that key rather than the bucket's
        default (staging's seeds: a key staging may decrypt, which decrypts nothing else of prod's)."""
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 needs parts of at least 5 MiB")
        self._client = client
        self.bucket = bucket
        self.part_size = part_size
        self.max_in_flight = max_in_flight
        # Per object, without the bucket key: each object's encryption context is its own ARN.
        self._encryption: dict[str, Any] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id, "BucketKeyEnabled": False}
            if kms_key_id
            else {}
        )

    @property
    def client(self) -> Any:
        if isinstance(self._client, Future):
            self._client = self._client.result()
        return self._client

    # --- writing -----------------------------------------------------------------------------

    def upload_stream(
        self,
        key: str,
        stream: IO[bytes],
        *,
        content_type: str,
        before_complete: Callable[[], None],
        lock: Lock | None = None,
    ) -> UploadResult:
        """Upload everything `stream` yields to `key`, locked by `lock`; abort the upload on any error.

        `before_complete` runs once the stream has ended and every part is stored, and must
        raise if the producer failed: a dump cut short ends its stream like a finished one.
        """
        digest = hashlib.sha256()
        size = 0
        parts: list[dict[str, Any]] = []
        # A fixed set of part buffers, reused: memory stays at part size x in flight, and flat,
        # however large the dump (fresh 8 MiB buffers each time fragment the heap and grow).
        free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(self.max_in_flight):
            free.put(bytearray(self.part_size))
        futures: list[Future[dict[str, Any]]] = []
        # The upload is created by the uploader threads, once the first part is read, never by
        # this (reading) thread: the client may still be loading then, and a reader waiting on
        # it would stop draining the pipe and stall the producer.
        creating: Future[str] | None = None

        def create() -> str:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type, **_lock_args(lock), **self._encryption
            )
            return created["UploadId"]

        def send(upload: Future[str], number: int, body: bytes | bytearray, buffer: bytearray) -> dict[str, Any]:
            try:
                checksum = {"ChecksumAlgorithm": CHECKSUM} if lock else {}
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload.result(), PartNumber=number, Body=body, **checksum
                )
                part = {"PartNumber": number, "ETag": response["ETag"]}
                if lock:
                    part["ChecksumSHA256"] = response["ChecksumSHA256"]
                return part
            finally:
                free.put(buffer)  # botocore has sent (or given up on) the body: the buffer is free

        try:
            with ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="s3-part") as pool:
                number = 0
                while True:
                    buffer = free.get()  # waits while every buffer is being uploaded
                    filled = read_into(stream, buffer)
                    if filled == 0 and number > 0:
                        break
                    number += 1
                    with memoryview(buffer) as view:
                        digest.update(view[:filled])
                    size += filled
                    # Only the last part is short; it alone is copied, to its exact length.
                    body = buffer if filled == self.part_size else bytes(buffer[:filled])
                    if creating is None:
                        creating = pool.submit(create)
                    futures.append(pool.submit(send, creating, number, body, buffer))
                    if any(f.done() and f.exception() for f in futures):
                        break  # stop reading: a part failed after its retries
                    if filled < self.part_size:
                        break
                parts = [f.result() for f in futures]
            before_complete()
            assert creating is not None  # the loop reads at least one part
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=creating.result(),
                MultipartUpload={"Parts": parts},
                IfNoneMatch=WRITE_ONCE,
            )
            if lock:
                # Set again on the completed object (same date: S3 accepts it): an S3 API that
                # drops a multipart upload's lock headers (moto's does) leaves nothing unlocked.
                self.extend_lock(key, lock)
        except BaseException:
            if creating is not None and creating.done() and not creating.exception():
                self._abort(key, creating.result())
            raise
        return UploadResult(key=key, size=size, sha256=digest.hexdigest(), parts=len(parts))

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            log.warning("aborted the multipart upload of %s: no partial object is left", key)
        except Exception:
            log.exception("could not abort the multipart upload of %s; the bucket's lifecycle rule will", key)

    def put_json(self, key: str, document: dict[str, Any], *, lock: Lock | None = None) -> None:
        body = json.dumps(document, indent=2, sort_keys=True).encode()
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            IfNoneMatch=WRITE_ONCE,
            **_lock_args(lock),
            **self._encryption,
        )

    def copy(self, source: str, destination: str, *, lock: Lock | None = None) -> None:
        """Server-side copy: the data never leaves S3. A multipart upload of copied parts, whose
        completion is written once (CopyObject takes no `If-None-Match`: S3 answers 501). The
        lock is set right after: a copy has no body to checksum (see CHECKSUM), and a copy left
        unlocked by a crash in between is locked by the next run's retention pass (and by the
        bucket's default retention meanwhile)."""
        size = int(self.client.head_object(Bucket=self.bucket, Key=source)["ContentLength"])
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=destination, **self._encryption)
        upload_id = upload["UploadId"]
        try:
            parts = []
            starts = range(0, size, COPY_PART_BYTES) if size > COPY_PART_BYTES else [0]
            for number, start in enumerate(starts, start=1):
                ranged = (
                    {"CopySourceRange": f"bytes={start}-{min(start + COPY_PART_BYTES, size) - 1}"}
                    if size > COPY_PART_BYTES
                    else {}
                )
                copied = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=destination,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    **ranged,
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=destination,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch=WRITE_ONCE,
            )
        except BaseException:
            self._abort(destination, upload_id)
            raise
        if lock:
            self.extend_lock(destination, lock)

    # --- retention ---------------------------------------------------------------------------

    def locked_until(self, key: str) -> datetime | None:
        """The current version's Object Lock date, or None when it is not locked."""
        head = self.client.head_object(Bucket=self.bucket, Key=key)
        return head.get("ObjectLockRetainUntilDate")

    def extend_lock(self, key: str, lock: Lock) -> None:
        """Move the current version's lock to `lock.until`. Only ever later: S3 refuses to shorten
        a COMPLIANCE lock, and a GOVERNANCE one without a bypass permission the runner lacks."""
        self.client.put_object_retention(
            Bucket=self.bucket, Key=key, Retention={"Mode": lock.mode, "RetainUntilDate": lock.until}
        )

    def release(self, key: str) -> None:
        """Hand the current version to the bucket's lifecycle rule for released copies."""
        name, value = RELEASE_TAG
        self.client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": [{"Key": name, "Value": value}]})

    # --- reading -----------------------------------------------------------------------------

    def get_json(self, key: str) -> dict[str, Any]:
        return json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def iter_object(self, key: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def manifest_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.list_keys(prefix) if k.endswith(MANIFEST_SUFFIX))

    def sha256_of(self, key: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        for chunk in self.iter_object(key):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size
