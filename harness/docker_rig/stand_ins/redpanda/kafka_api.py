"""The Kafka API of the Redpanda stand-in: ApiVersions (key 18) answered, every other request
closed. What the program's users of the Kafka API ask first is ApiVersions (the app's /health
stand-in, a client's bootstrap); a real producer or consumer needs the real Redpanda."""

from __future__ import annotations

import socketserver
import struct

API_VERSIONS = 18
# key -> (min, max) versions advertised: Produce, Fetch, ListOffsets, Metadata, ApiVersions.
ADVERTISED = {0: (0, 9), 1: (0, 12), 2: (0, 7), 3: (0, 12), 18: (0, 3)}


def api_versions_response(correlation_id: int) -> bytes:
    """ApiVersions v0's answer: no error, then the advertised keys."""
    body = struct.pack("!ihi", correlation_id, 0, len(ADVERTISED))
    body += b"".join(struct.pack("!hhh", key, low, high) for key, (low, high) in sorted(ADVERTISED.items()))
    return struct.pack("!i", len(body)) + body


class KafkaHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            header = self.request.recv(4)
            if len(header) < 4:
                return
            length = struct.unpack("!i", header)[0]
            payload = b""
            while len(payload) < length:
                chunk = self.request.recv(length - len(payload))
                if not chunk:
                    return
                payload += chunk
            api_key, _version, correlation_id = struct.unpack("!hhi", payload[:8])
            if api_key != API_VERSIONS:
                return  # what a broker does with a request it cannot parse: close
            self.request.sendall(api_versions_response(correlation_id))


class KafkaServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, KafkaHandler)
