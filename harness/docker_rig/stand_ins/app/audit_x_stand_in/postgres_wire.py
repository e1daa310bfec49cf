"""A PostgreSQL client in the standard library: startup, password authentication, simple queries.

Enough of the frontend/backend protocol (version 3.0, PostgreSQL's docs "Message Flow" and
"Message Formats") for what the app stand-in does: log in as a Rails app would (SCRAM-SHA-256,
md5 or a clear-text password, whichever the server asks for), run SQL with the simple query
protocol, and read the rows back as text. No TLS: the servers it talks to are on the
environment's internal network, as the app's own are.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import secrets
import socket
import struct
from dataclasses import dataclass

PROTOCOL_VERSION = 196608  # 3.0
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12
SCRAM = "SCRAM-SHA-256"


class PostgresError(Exception):
    """The server refused (an ErrorResponse: its severity, SQLSTATE and message), or spoke out of turn."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    user: str
    password: str
    database: str


def _cstring(value: str) -> bytes:
    return value.encode() + b"\0"


def _error_fields(payload: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


@functools.lru_cache(maxsize=8)
def _salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    # Cached: the checker logs in ten times a second with the same password and the server's salt.
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


class ScramClient:
    """The client side of SCRAM-SHA-256 without channel binding (RFC 5802, RFC 7677)."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        # PostgreSQL takes the user name from the startup message and ignores this one.
        self.client_first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def first_message(self) -> bytes:
        return f"n,,{self.client_first_bare}".encode()

    def final_message(self, server_first: str) -> bytes:
        attributes = dict(item.split("=", 1) for item in server_first.split(","))
        if not attributes["r"].startswith(self.nonce):
            raise PostgresError("SCRAM: the server's nonce does not extend ours")
        salted = _salted_password(self.password, base64.b64decode(attributes["s"]), int(attributes["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attributes['r']}"
        auth_message = f"{self.client_first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: str) -> None:
        attributes = dict(item.split("=", 1) for item in server_final.split(","))
        if "e" in attributes:
            raise PostgresError(f"SCRAM: the server refused: {attributes['e']}")
        if not hmac.compare_digest(base64.b64decode(attributes.get("v", "")), self.server_signature):
            raise PostgresError("SCRAM: the server's signature is wrong (not the server that holds the password)")


class Connection:
    """One logged-in session; `query` runs SQL (several statements allowed) and returns the rows."""

    def __init__(self, credentials: Credentials, timeout: float) -> None:
        self.sock = socket.create_connection((credentials.host, credentials.port), timeout=timeout)
        try:
            self._start(credentials)
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a server that is gone needs no goodbye
            self.sock.sendall(b"X" + struct.pack("!i", 4))
        self.sock.close()

    def _recv_exactly(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(size - len(chunks))
            if not chunk:
                raise PostgresError("the server closed the connection")
            chunks += chunk
        return bytes(chunks)

    def _read(self) -> tuple[bytes, bytes]:
        header = self._recv_exactly(5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        payload = self._recv_exactly(length - 4)
        if kind == b"E":
            fields = _error_fields(payload)
            raise PostgresError(fields.get("M", "error"), fields.get("C", ""))
        return kind, payload

    def _send(self, kind: bytes, payload: bytes) -> None:
        self.sock.sendall(kind + struct.pack("!i", len(payload) + 4) + payload)

    def _start(self, credentials: Credentials) -> None:
        parameters = b"".join(
            _cstring(key) + _cstring(value)
            for key, value in (
                ("user", credentials.user),
                ("database", credentials.database),
                ("application_name", "audit-x-app-stand-in"),
            )
        )
        body = struct.pack("!i", PROTOCOL_VERSION) + parameters + b"\0"
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        scram: ScramClient | None = None
        while True:
            kind, payload = self._read()
            if kind == b"R":
                code = struct.unpack("!i", payload[:4])[0]
                if code == AUTH_OK:
                    continue
                if code == AUTH_CLEARTEXT:
                    self._send(b"p", _cstring(credentials.password))
                elif code == AUTH_MD5:
                    inner = hashlib.md5((credentials.password + credentials.user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + payload[4:8]).hexdigest()
                    self._send(b"p", _cstring("md5" + outer))
                elif code == AUTH_SASL:
                    mechanisms = [m.decode() for m in payload[4:].split(b"\0") if m]
                    if SCRAM not in mechanisms:
                        raise PostgresError(f"the server offers only {mechanisms}, not {SCRAM}")
                    scram = ScramClient(credentials.password)
                    first = scram.first_message()
                    self._send(b"p", _cstring(SCRAM) + struct.pack("!i", len(first)) + first)
                elif code == AUTH_SASL_CONTINUE and scram is not None:
                    self._send(b"p", scram.final_message(payload[4:].decode()))
                elif code == AUTH_SASL_FINAL and scram is not None:
                    scram.verify(payload[4:].decode())
                else:
                    raise PostgresError(f"authentication request {code} is not supported")
            elif kind == b"Z":
                return
            # S (parameter status), K (backend key data), N (notice): nothing to do.

    def query(self, sql: str) -> list[tuple[str | None, ...]]:
        """Run `sql` with the simple query protocol; the rows of its results, as text.

        On an error the server rolls back what the statements did (an implicit transaction), and
        this raises once the server is ready again, so the connection stays usable.
        """
        self._send(b"Q", _cstring(sql))
        rows: list[tuple[str | None, ...]] = []
        failure: PostgresError | None = None
        while True:
            try:
                kind, payload = self._read()
            except PostgresError as error:
                if not error.code:
                    raise
                failure = error
                continue
            if kind == b"D":
                rows.append(_data_row(payload))
            elif kind == b"Z":
                if failure is not None:
                    raise failure
                return rows


def _data_row(payload: bytes) -> tuple[str | None, ...]:
    count = struct.unpack("!h", payload[:2])[0]
    offset, values = 2, []
    for _ in range(count):
        length = struct.unpack("!i", payload[offset : offset + 4])[0]
        offset += 4
        if length < 0:
            values.append(None)
        else:
            values.append(payload[offset : offset + length].decode())
            offset += length
    return tuple(values)


def connect(credentials: Credentials, timeout: float = 1.0) -> Connection:
    return Connection(credentials, timeout)
