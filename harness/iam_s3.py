"""An S3 front that evaluates IAM identity policies before moto sees a request.

moto's S3 server stores objects and enforces Object Lock, versioning and retention, but allows
every request whoever signs it. This proxy stands where AWS's authorisation stands: it reads the
access key id from the request's SigV4 `Authorization` header, finds the identity policy the
test registered for that key, works out the S3 actions the request needs and the condition keys
AWS would set for it, and evaluates the policy the way IAM does (an explicit Deny wins, then an
Allow, else an implicit deny). Refused requests get S3's own `403 AccessDenied`; the others go
on to moto unchanged.

What it models, from AWS's documentation of S3's actions and condition keys
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html):
- the action of each request the tests make: objects (Get/Put/Delete, by version, retention,
  legal hold, tagging, copy, multipart), multi-object delete (one action per key), listings (by
  version or not) and the bucket's configuration (lifecycle, policy, lock, versioning, delete);
  a request that sets a lock, a legal hold, tags or bypasses governance on the way needs those
  actions as well, as AWS requires;
- Action/NotAction and Resource/NotResource with `*` and `?` wildcards;
- the conditions our policies use: StringEquals, StringNotEquals, StringLike, StringNotLike,
  NumericLessThan(Equals), NumericGreaterThan(Equals), Null, Bool, with `IfExists`; the keys
  s3:prefix, s3:if-none-match, s3:object-lock-mode, s3:object-lock-remaining-retention-days,
  s3:object-lock-legal-hold, s3:x-amz-server-side-encryption, s3:ObjectCreationOperation.
It is a model of IAM, not IAM: what it shows holds where its rules are AWS's; a request kind it
does not know is refused rather than guessed (`UnknownRequestError`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class UnknownRequestError(ValueError):
    """A request whose S3 action this model does not know."""


@dataclass(frozen=True)
class Need:
    """One action a request needs, on one resource, with the condition keys AWS sets for it."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Decision:
    method: str
    path: str
    identity: str
    allowed: bool
    needs: list[Need]
    refused: Need | None = None
    lock_refusal: str | None = None  # S3's Object Lock refused it, after IAM allowed it


def _wildcard(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


_STRING_TESTS = {
    "StringEquals": lambda actual, values: actual in values,
    "StringNotEquals": lambda actual, values: actual not in values,
    "StringLike": lambda actual, values: any(_wildcard(v, actual) for v in values),
    "StringNotLike": lambda actual, values: not any(_wildcard(v, actual) for v in values),
    "Bool": lambda actual, values: actual.lower() in values,
}
_NUMERIC_TESTS = {
    "NumericEquals": lambda a, b: a == b,
    "NumericLessThan": lambda a, b: a < b,
    "NumericLessThanEquals": lambda a, b: a <= b,
    "NumericGreaterThan": lambda a, b: a > b,
    "NumericGreaterThanEquals": lambda a, b: a >= b,
}


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    base = operator.removesuffix("IfExists")
    values = [str(v).lower() if isinstance(v, bool) else str(v) for v in _listed(expected)]
    if base == "Null":
        return (key not in context) == (values[0] == "true")
    if key not in context:
        # A missing key satisfies only ...IfExists and the negated string operators.
        return operator.endswith("IfExists") or base in ("StringNotEquals", "StringNotLike")
    actual = context[key]
    if base in _STRING_TESTS:
        return _STRING_TESTS[base](actual, values)
    if base in _NUMERIC_TESTS:
        return any(_NUMERIC_TESTS[base](float(actual), float(v)) for v in values)
    raise UnknownRequestError(f"condition operator {operator} is not modelled")


def _statement_matches(statement: Mapping[str, Any], need: Need) -> bool:
    if "Action" in statement:
        if not any(_wildcard(a, need.action, case_sensitive=False) for a in _listed(statement["Action"])):
            return False
    elif any(_wildcard(a, need.action, case_sensitive=False) for a in _listed(statement.get("NotAction", []))):
        return False
    if "Resource" in statement:
        if not any(_wildcard(r, need.resource) for r in _listed(statement["Resource"])):
            return False
    elif any(_wildcard(r, need.resource) for r in _listed(statement.get("NotResource", []))):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, need.context):
                return False
    return True


def allows(policy: Mapping[str, Any], need: Need) -> bool:
    """IAM's evaluation of one identity policy for one action: an explicit Deny wins, then an
    Allow; anything else is an implicit deny."""
    statements = _listed_statements(policy.get("Statement", []))
    if any(s["Effect"] == "Deny" and _statement_matches(s, need) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _statement_matches(s, need) for s in statements)


def _listed_statements(statements: Any) -> list[Mapping[str, Any]]:
    return [statements] if isinstance(statements, dict) else list(statements)


def _retention_days(until: str, now: datetime) -> str:
    """s3:object-lock-remaining-retention-days: whole days from now to the retain-until date."""
    return str(max(0, math.ceil((_moment(until) - now).total_seconds() / 86400)))


@dataclass(frozen=True)
class _Request:
    method: str
    query: Mapping[str, str]
    header: Mapping[str, str]
    body: bytes
    bucket_arn: str
    object_arn: str
    now: datetime

    @property
    def bypass(self) -> list[Need]:
        """BypassGovernanceRetention, where the request asks to bypass a GOVERNANCE lock."""
        if self.header.get("x-amz-bypass-governance-retention", "").lower() != "true":
            return []
        return [Need("s3:BypassGovernanceRetention", self.object_arn)]

    def obj(self, action: str, **context: str) -> Need:
        return Need(action, self.object_arn, context)

    def versioned(self, plain: str, by_version: str) -> str:
        return by_version if "versionId" in self.query else plain


# The bucket's configuration: (verb, subresource) -> action.
_BUCKET_CONFIGURATION = {
    ("PUT", "lifecycle"): "s3:PutLifecycleConfiguration",
    ("DELETE", "lifecycle"): "s3:PutLifecycleConfiguration",
    ("GET", "lifecycle"): "s3:GetLifecycleConfiguration",
    ("PUT", "policy"): "s3:PutBucketPolicy",
    ("DELETE", "policy"): "s3:DeleteBucketPolicy",
    ("PUT", "object-lock"): "s3:PutBucketObjectLockConfiguration",
    ("GET", "object-lock"): "s3:GetBucketObjectLockConfiguration",
    ("PUT", "versioning"): "s3:PutBucketVersioning",
    ("GET", "versioning"): "s3:GetBucketVersioning",
    ("PUT", "encryption"): "s3:PutEncryptionConfiguration",
    ("DELETE", "encryption"): "s3:PutEncryptionConfiguration",
    ("PUT", "publicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("PUT", "tagging"): "s3:PutBucketTagging",
    ("GET", "uploads"): "s3:ListBucketMultipartUploads",
}
_LISTING_PARAMETERS = {
    "list-type",
    "prefix",
    "delimiter",
    "continuation-token",
    "max-keys",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "marker",
}
# Object subresources read: subresource -> (action, action by version).
_OBJECT_READS = {
    "retention": ("s3:GetObjectRetention", "s3:GetObjectRetention"),
    "legal-hold": ("s3:GetObjectLegalHold", "s3:GetObjectLegalHold"),
    "tagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "uploadId": ("s3:ListMultipartUploadParts", "s3:ListMultipartUploadParts"),
}


def needs_of(
    method: str, path: str, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> list[Need]:
    """The actions a path-style S3 request needs, each with its resource and condition keys."""
    url = urlsplit(path)
    bucket, _, key = unquote(url.path).lstrip("/").partition("/")
    if not bucket:
        raise UnknownRequestError(f"{method} {path}: no bucket")
    request = _Request(
        method=method,
        query={k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()},
        header={k.lower(): v for k, v in headers.items()},
        body=body,
        bucket_arn=f"arn:aws:s3:::{bucket}",
        object_arn=f"arn:aws:s3:::{bucket}/{key}",
        now=now or datetime.now(UTC),
    )
    needs = _bucket_needs(request) if not key else _object_needs(request)
    if needs is None:
        raise UnknownRequestError(f"{method} {path}: not a request this model knows")
    return needs


def _bucket_needs(request: _Request) -> list[Need] | None:
    method, query = request.method, request.query
    listing = {"s3:prefix": query.get("prefix", "")}
    if method == "GET" and "versions" in query:
        return [Need("s3:ListBucketVersions", request.bucket_arn, listing)]
    if method in ("GET", "HEAD") and not set(query) - _LISTING_PARAMETERS:
        return [Need("s3:ListBucket", request.bucket_arn, listing)]
    if method == "POST" and "delete" in query:
        return _multi_delete(request.bucket_arn, request.body, bypass=bool(request.bypass))
    if method == "DELETE" and not query:
        return [Need("s3:DeleteBucket", request.bucket_arn)]
    if method == "PUT" and not query:
        return [Need("s3:CreateBucket", request.bucket_arn)]
    action = next((a for (verb, name), a in _BUCKET_CONFIGURATION.items() if verb == method and name in query), None)
    return [Need(action, request.bucket_arn)] if action else None


def _object_needs(request: _Request) -> list[Need] | None:
    method, query = request.method, request.query
    if method in ("GET", "HEAD"):
        pair = next((actions for name, actions in _OBJECT_READS.items() if name in query), None)
        plain, by_version = pair or ("s3:GetObject", "s3:GetObjectVersion")
        return [request.obj(request.versioned(plain, by_version))]
    if method == "DELETE":
        return _delete_needs(request)
    if method == "PUT" and {"retention", "legal-hold", "tagging"} & set(query):
        return _object_setting_needs(request)
    writes = (method == "PUT" and (not query or {"partNumber", "uploadId"} <= set(query))) or (
        method == "POST" and ("uploads" in query or "uploadId" in query)
    )
    return _put_needs(request) if writes else None


def _delete_needs(request: _Request) -> list[Need]:
    if "uploadId" in request.query:
        return [request.obj("s3:AbortMultipartUpload")]
    if "tagging" in request.query:
        return [request.obj(request.versioned("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"))]
    return [request.obj(request.versioned("s3:DeleteObject", "s3:DeleteObjectVersion")), *request.bypass]


def _object_setting_needs(request: _Request) -> list[Need]:
    """A lock's date, a legal hold or tags set on an object that exists."""
    if "retention" in request.query:
        return [_retention_need(request), *request.bypass]
    if "legal-hold" in request.query:
        return [request.obj("s3:PutObjectLegalHold")]
    return [request.obj(request.versioned("s3:PutObjectTagging", "s3:PutObjectVersionTagging"))]


def _retention_need(request: _Request) -> Need:
    """PutObjectRetention, with the mode and the days the new date leaves as condition keys."""
    retention = ElementTree.fromstring(request.body or b"<Retention/>")
    mode = retention.findtext(f"{S3_NS}Mode") or retention.findtext("Mode") or ""
    until = retention.findtext(f"{S3_NS}RetainUntilDate") or retention.findtext("RetainUntilDate")
    context = {"s3:object-lock-mode": mode} if mode else {}
    if until:
        context["s3:object-lock-remaining-retention-days"] = _retention_days(until, request.now)
    return request.obj("s3:PutObjectRetention", **context)


def _put_needs(request: _Request) -> list[Need]:
    """PutObject (a part, an upload's start or end, a copy), and what its headers add: a lock
    (PutObjectRetention), a legal hold, tags, the copy's source."""
    header = request.header
    context = {
        name: header[source]
        for name, source in (
            ("s3:if-none-match", "if-none-match"),
            ("s3:x-amz-server-side-encryption", "x-amz-server-side-encryption"),
        )
        if source in header
    }
    # True where the request creates the object (PutObject, a copy, CompleteMultipartUpload),
    # false for the steps of a multipart upload, which take no conditional header.
    creates = not ({"uploads", "partNumber"} & set(request.query))
    context["s3:ObjectCreationOperation"] = "true" if creates else "false"
    needs = [request.obj("s3:PutObject", **context)]
    mode, until = header.get("x-amz-object-lock-mode"), header.get("x-amz-object-lock-retain-until-date")
    if mode or until:
        lock = {"s3:object-lock-mode": mode or ""}
        if until:
            lock["s3:object-lock-remaining-retention-days"] = _retention_days(until, request.now)
        needs.append(request.obj("s3:PutObjectRetention", **lock))
    if "x-amz-object-lock-legal-hold" in header:
        hold = {"s3:object-lock-legal-hold": header["x-amz-object-lock-legal-hold"]}
        needs.append(request.obj("s3:PutObjectLegalHold", **hold))
    if "x-amz-tagging" in header or header.get("x-amz-tagging-directive", "").upper() == "REPLACE":
        needs.append(request.obj("s3:PutObjectTagging"))
    source = header.get("x-amz-copy-source")
    if source:
        source_path, _, source_query = unquote(source).lstrip("/").partition("?")
        action = "s3:GetObjectVersion" if "versionId=" in source_query else "s3:GetObject"
        needs.append(Need(action, f"arn:aws:s3:::{source_path}"))
    return needs


def _multi_delete(bucket_arn: str, body: bytes, *, bypass: bool) -> list[Need]:
    """DeleteObjects: one DeleteObject (or DeleteObjectVersion) per key it names."""
    document = ElementTree.fromstring(body)
    needs = []
    for item in document.iter():
        if item.tag.removeprefix(S3_NS) != "Object":
            continue
        key = item.findtext(f"{S3_NS}Key") or item.findtext("Key") or ""
        version = item.findtext(f"{S3_NS}VersionId") or item.findtext("VersionId")
        needs.append(Need("s3:DeleteObjectVersion" if version else "s3:DeleteObject", f"{bucket_arn}/{key}"))
        if bypass:
            needs.append(Need("s3:BypassGovernanceRetention", f"{bucket_arn}/{key}"))
    return needs


Upstream = Callable[[str, str, Mapping[str, str], bytes], tuple[int, list[tuple[str, str]], bytes]]


def _lock_shortened(upstream: Upstream, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """S3's own Object Lock rule, which moto does not enforce: a COMPLIANCE date never moves
    earlier, a GOVERNANCE one only with s3:BypassGovernanceRetention and its header (IAM has
    checked the permission by now). None when the new date keeps the lock as long or longer."""
    url = urlsplit(path)
    version = parse_qs(url.query).get("versionId")
    # The version's lock as HEAD shows it, asked with the caller's credentials and none of its
    # body's headers (moto checks who asks, not the signature).
    signed = {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-amz-date")}
    status, found, _ = upstream("HEAD", url.path + (f"?versionId={version[0]}" if version else ""), signed, b"")
    current = {k.lower(): v for k, v in found}
    old_mode, old_until = current.get("x-amz-object-lock-mode", ""), current.get("x-amz-object-lock-retain-until-date")
    new = ElementTree.fromstring(body)
    new_until = new.findtext(f"{S3_NS}RetainUntilDate") or new.findtext("RetainUntilDate")
    if status != 200 or not old_until or not new_until or _moment(new_until) >= _moment(old_until):
        return None
    bypass = {k.lower(): v for k, v in headers.items()}.get("x-amz-bypass-governance-retention", "")
    if old_mode == "GOVERNANCE" and bypass.lower() == "true":
        return None
    return f"Object Lock: the {old_mode} retention until {old_until} cannot be shortened"


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_ACCESS_KEY = re.compile(r"Credential=([A-Z0-9]+)/")


@dataclass
class IamFront:
    """The proxy's state: each access key id's identity name and policy, and what it decided."""

    url: str = ""
    identities: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    clock: Any = None  # () -> datetime, for the retention-days condition key

    def register(self, access_key_id: str, name: str, policy: str | dict[str, Any]) -> None:
        document = json.loads(policy) if isinstance(policy, str) else policy
        self.identities[access_key_id] = (name, document)

    def decide(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Decision:
        found = _ACCESS_KEY.search(headers.get("Authorization") or headers.get("authorization") or "")
        access_key = found.group(1) if found else ""
        name, policy = self.identities.get(access_key, ("anonymous", {"Statement": []}))
        now = self.clock() if self.clock else datetime.now(UTC)
        try:
            needs = needs_of(method, path, headers, body, now=now)
        except UnknownRequestError:
            decision = Decision(method, path, name, False, [])
        else:
            refused = next((need for need in needs if not allows(policy, need)), None)
            decision = Decision(method, path, name, refused is None, needs, refused)
        self.decisions.append(decision)
        return decision


@contextlib.contextmanager
def iam_s3_front(upstream: str) -> Iterator[IamFront]:
    """The IAM-evaluating proxy in front of `upstream` (moto's S3 server); yields its state,
    whose `url` is the endpoint to give clients."""
    target = urlsplit(upstream)
    front = IamFront()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items()}
            decision = front.decide(self.command, self.path, headers, body)
            if not decision.allowed:
                what = decision.refused.action if decision.refused else "an unmodelled request"
                message = (
                    f"<Error><Code>AccessDenied</Code><Message>{decision.identity} may not {what}</Message></Error>"
                )
                self._reply(403, [("Content-Type", "application/xml")], message.encode())
                return
            if self.command == "PUT" and "retention" in parse_qs(urlsplit(self.path).query, keep_blank_values=True):
                refusal = _lock_shortened(self._upstream, self.path, headers, body)
                if refusal:
                    decision.allowed, decision.lock_refusal = False, refusal
                    message = f"<Error><Code>AccessDenied</Code><Message>{refusal}</Message></Error>"
                    self._reply(403, [("Content-Type", "application/xml")], message.encode())
                    return
            status, response_headers, data = self._upstream(self.command, self.path, headers, body)
            self._reply(status, response_headers, data)

        def _upstream(
            self, method: str, path: str, headers: Mapping[str, str], body: bytes
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=300)
            forwarded = {k: v for k, v in headers.items() if k.lower() != "host"}
            forwarded["Host"] = target.netloc
            connection.request(method, path, body=body, headers=forwarded)
            response = connection.getresponse()
            result = response.status, response.getheaders(), response.read()
            connection.close()
            return result

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server's names)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    front.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield front
    finally:
        server.shutdown()
        server.server_close()
