"""A Redis client in the standard library: RESP2 commands and replies, enough for AUTH, SELECT, PING.

The app stand-in logs in as the Rails app's redis-rb client does with `redis://:<password>@host/0`:
AUTH with the password alone (the default user), SELECT the database, then PING.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


class RedisError(Exception):
    """The server answered with an error (`-ERR ...`, `-WRONGPASS ...`), or not in RESP."""


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    password: str
    user: str = ""
    database: int = 0


def encode(*arguments: str) -> bytes:
    parts = [f"*{len(arguments)}\r\n".encode()]
    for argument in arguments:
        data = argument.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Connection:
    def __init__(self, credentials: Credentials, timeout: float) -> None:
        self.sock = socket.create_connection((credentials.host, credentials.port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        try:
            if credentials.password:
                login = (credentials.user, credentials.password) if credentials.user else (credentials.password,)
                self.command("AUTH", *login)
            if credentials.database:
                self.command("SELECT", str(credentials.database))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def command(self, *arguments: str) -> str | int | None:
        self.sock.sendall(encode(*arguments))
        return self._reply()

    def _line(self) -> bytes:
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("the server closed the connection")
        return line[:-2]

    def _reply(self) -> str | int | None:
        line = self._line()
        kind, rest = line[:1], line[1:].decode(errors="replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            data = self.reader.read(length + 2)
            return data[:-2].decode(errors="replace")
        raise RedisError(f"unexpected reply {line[:40]!r}")


def connect(credentials: Credentials, timeout: float = 1.0) -> Connection:
    return Connection(credentials, timeout)
