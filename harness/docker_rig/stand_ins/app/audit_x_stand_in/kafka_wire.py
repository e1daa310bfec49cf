"""A Kafka API probe in the standard library: one ApiVersions request (key 18, version 0).

Every Kafka broker (Redpanda included) answers ApiVersions before anything else, with the APIs
it serves; a broker that answers it without an error and lists Metadata (key 3) is one a
producer could ask for partitions. That is what the app's `/health` means by "kafka: ok".
"""

from __future__ import annotations

import socket
import struct

API_VERSIONS = 18
METADATA = 3
CLIENT_ID = b"audit-x-app-stand-in"


class KafkaError(Exception):
    pass


def api_versions_request(correlation_id: int) -> bytes:
    body = struct.pack("!hhih", API_VERSIONS, 0, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    return struct.pack("!i", len(body)) + body


def parse_api_versions_response(payload: bytes, correlation_id: int) -> dict[int, tuple[int, int]]:
    """The APIs a broker serves (key -> min and max version), from its ApiVersions v0 answer."""
    answered, error, count = struct.unpack("!ihi", payload[:10])
    if answered != correlation_id:
        raise KafkaError(f"the broker answered request {answered}, not {correlation_id}")
    if error:
        raise KafkaError(f"the broker answered ApiVersions with error code {error}")
    apis = {}
    for index in range(count):
        key, low, high = struct.unpack("!hhh", payload[10 + 6 * index : 16 + 6 * index])
        apis[key] = (low, high)
    return apis


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise KafkaError("the broker closed the connection")
        data += chunk
    return bytes(data)


def check_broker(host: str, port: int, timeout: float = 1.0) -> None:
    """Raise unless the broker at host:port answers ApiVersions and serves Metadata."""
    correlation_id = 1
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(api_versions_request(correlation_id))
        length = struct.unpack("!i", _recv_exactly(sock, 4))[0]
        apis = parse_api_versions_response(_recv_exactly(sock, length), correlation_id)
    if METADATA not in apis:
        raise KafkaError("the broker does not serve Metadata")
