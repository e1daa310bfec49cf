"""The Traefik stand-in: `traefik --configFile=PATH`, the subset of Traefik v3 the program's edge
uses (components/platform/edge.py), so that releases and canaries can be driven through it.

Static configuration (required, YAML): the entry points' addresses; the `ping` entry point
(`/ping` -> `OK`, the program's health check); the prometheus `metrics` entry point with its
buckets; an entry point's redirection to another scheme (308, as Traefik's permanent one);
`providers.file.directory`, read again within a second of a change (`watch`); the ACME storage
directory writable. The HTTPS entry points serve a self-signed certificate made at start (no
ACME: nothing outside can be reached).

Dynamic configuration, from the file provider: routers with `Host(...)` and `Header(..., ...)`
rules joined by `&&` (the longest rule first, or `priority`); `loadBalancer` services (round
robin over the servers whose `healthCheck.path` answered 2xx/3xx at its last check, every
`interval`; a server not checked yet counts as up, as in Traefik) and `weighted` services (smooth
weighted round robin over the children that have a server up; weight 0 is ignored); the
middlewares `rateLimit` (per client address, average/period with burst: 429), `headers` (the
security headers) and `retry` (attempts on a connection failure). No server up: 503.

Per service, `traefik_service_requests_total{code,method,protocol,service}` and the
`traefik_service_request_duration_seconds` histogram, as Traefik names them (`<name>@file`), and a
JSON access line per request. Anything else in the files is ignored, and a rule it cannot read
leaves its router out, with a log line.
"""

from __future__ import annotations

import http.client
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from stand_in_service import announce, listen_address, log, require_directories, require_files, serve_until_stopped

SERVICE = "traefik"
KEEPS = "--configFile, /ping on the ping entry point, file-provider routes with health-checked servers, metrics"
RULE_PART = re.compile(r"^(Host|Header)\(`([^`]*)`(?:\s*,\s*`([^`]*)`)?\)$")
DEFAULT_BUCKETS = [0.1, 0.3, 1.2, 5.0]


def seconds(duration: object, default: float) -> float:
    if duration is None:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", str(duration))
    if match is None:
        return default
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match[2]]


@dataclass
class Router:
    name: str
    host: str
    headers: dict[str, str]
    entry_points: list[str]
    service: str
    middlewares: list[str]
    priority: int

    def matches(self, entry_point: str, host: str, headers: dict[str, str]) -> bool:
        return (
            entry_point in self.entry_points
            and host.split(":", maxsplit=1)[0].lower() == self.host.lower()
            and all(headers.get(k.lower()) == v for k, v in self.headers.items())
        )


def parse_rule(name: str, rule: str) -> tuple[str, dict[str, str]] | None:
    host, headers = "", {}
    for part in (p.strip() for p in rule.split("&&")):
        match = RULE_PART.match(part)
        if match is None:
            log(SERVICE, "error", f"router {name}: rule part {part!r} is not one this stand-in reads; router left out")
            return None
        if match[1] == "Host":
            host = match[2]
        else:
            headers[match[2]] = match[3] or ""
    return host, headers


@dataclass
class Server:
    url: str
    up: bool = True


@dataclass
class Pool:
    """A loadBalancer service: its servers, their health, and the round robin's position."""

    servers: list[Server]
    check_path: str | None
    interval: float
    timeout: float
    pass_host: bool
    turn: int = 0

    def pick(self) -> Server | None:
        live = [server for server in self.servers if server.up]
        if not live:
            return None
        self.turn += 1
        return live[self.turn % len(live)]


@dataclass
class Weighted:
    children: dict[str, int]
    current: dict[str, int] = field(default_factory=dict)


@dataclass
class Routes:
    routers: list[Router] = field(default_factory=list)
    pools: dict[str, Pool] = field(default_factory=dict)
    weighted: dict[str, Weighted] = field(default_factory=dict)
    middlewares: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_routes(directory: Path) -> Routes:
    routes = Routes()
    for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            log(SERVICE, "error", f"{path}: {error}; file ignored")
            continue
        http_config = document.get("http") or {}
        for name, spec in (http_config.get("services") or {}).items():
            if "loadBalancer" in spec:
                balancer = spec["loadBalancer"]
                check = balancer.get("healthCheck") or {}
                routes.pools[name] = Pool(
                    servers=[Server(s["url"]) for s in balancer.get("servers", [])],
                    check_path=check.get("path"),
                    interval=seconds(check.get("interval"), 30.0),
                    timeout=seconds(check.get("timeout"), 5.0),
                    pass_host=balancer.get("passHostHeader", True),
                )
            elif "weighted" in spec:
                children = {c["name"]: int(c.get("weight", 1)) for c in spec["weighted"].get("services", [])}
                routes.weighted[name] = Weighted({k: w for k, w in children.items() if w > 0})
        routes.middlewares.update(http_config.get("middlewares") or {})
        for name, spec in (http_config.get("routers") or {}).items():
            parsed = parse_rule(name, spec.get("rule", ""))
            if parsed is None:
                continue
            routes.routers.append(
                Router(
                    name=name,
                    host=parsed[0],
                    headers=parsed[1],
                    entry_points=spec.get("entryPoints", []),
                    service=spec["service"],
                    middlewares=spec.get("middlewares", []),
                    priority=int(spec.get("priority") or len(spec.get("rule", ""))),
                )
            )
    routes.routers.sort(key=lambda router: -router.priority)
    return routes


class Metrics:
    def __init__(self, buckets: list[float]) -> None:
        self.buckets = sorted(buckets)
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.durations: dict[tuple[str, str, str], list[float]] = defaultdict(list)

    def record(self, service: str, code: int, method: str, duration: float) -> None:
        key = (f"{service}@file", str(code), method)
        with self.lock:
            self.requests[key] += 1
            self.durations[key].append(duration)

    def render(self) -> str:
        lines = ["# TYPE traefik_service_requests_total counter"]
        with self.lock:
            for (service, code, method), count in sorted(self.requests.items()):
                labels = f'code="{code}",method="{method}",protocol="http",service="{service}"'
                lines.append(f"traefik_service_requests_total{{{labels}}} {count}")
            lines.append("# TYPE traefik_service_request_duration_seconds histogram")
            for (service, code, method), durations in sorted(self.durations.items()):
                labels = f'code="{code}",method="{method}",protocol="http",service="{service}"'
                for bound in self.buckets:
                    below = sum(1 for d in durations if d <= bound)
                    lines.append(f'traefik_service_request_duration_seconds_bucket{{{labels},le="{bound}"}} {below}')
                lines.append(f'traefik_service_request_duration_seconds_bucket{{{labels},le="+Inf"}} {len(durations)}')
                lines.append(f"traefik_service_request_duration_seconds_sum{{{labels}}} {sum(durations)}")
                lines.append(f"traefik_service_request_duration_seconds_count{{{labels}}} {len(durations)}")
        return "\n".join(lines) + "\n"


class RateLimits:
    """Token buckets per (middleware, client address): `average` per `period`, up to `burst`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, name: str, spec: dict[str, Any], client: str) -> bool:
        rate = float(spec.get("average", 0)) / seconds(spec.get("period"), 1.0)
        if rate <= 0:
            return True
        burst = float(spec.get("burst", 1))
        now = time.monotonic()
        with self.lock:
            tokens, at = self.buckets.get((name, client), (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            allowed = tokens >= 1
            self.buckets[(name, client)] = (tokens - 1 if allowed else tokens, now)
        return allowed


SECURITY_HEADERS = {
    "contentTypeNosniff": ("X-Content-Type-Options", lambda v: "nosniff" if v else None),
    "frameDeny": ("X-Frame-Options", lambda v: "DENY" if v else None),
    "referrerPolicy": ("Referrer-Policy", lambda v: v or None),
}


def security_headers(spec: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for key, (header, render) in SECURITY_HEADERS.items():
        value = render(spec.get(key))
        if value:
            headers[header] = value
    if spec.get("stsSeconds"):
        sts = f"max-age={spec['stsSeconds']}" + ("; includeSubDomains" if spec.get("stsIncludeSubdomains") else "")
        headers["Strict-Transport-Security"] = sts
    return headers


class Edge:
    def __init__(self, directory: Path, buckets: list[float]) -> None:
        self.directory = directory
        self.routes = Routes()
        self.signature: tuple[tuple[str, float], ...] | None = None
        self.lock = threading.Lock()
        self.metrics = Metrics(buckets)
        self.limits = RateLimits()
        self.checked: dict[str, float] = {}

    def watch(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            files = sorted([*self.directory.glob("*.yml"), *self.directory.glob("*.yaml")])
            signature = tuple((str(p), p.stat().st_mtime) for p in files if p.exists())
            if signature != self.signature:
                routes = load_routes(self.directory)
                with self.lock:
                    self.routes, self.signature, self.checked = routes, signature, {}
                log(SERVICE, "info", "routes loaded", routers=[r.name for r in routes.routers])
            self.check_health()
            stopped.wait(0.2)

    def check_health(self) -> None:
        with self.lock:
            pools = dict(self.routes.pools)
        now = time.monotonic()
        for name, pool in pools.items():
            if pool.check_path is None or now - self.checked.get(name, -1e9) < pool.interval:
                continue
            self.checked[name] = now
            for server in pool.servers:
                threading.Thread(target=self._check, args=(server, pool), daemon=True).start()

    @staticmethod
    def _check(server: Server, pool: Pool) -> None:
        target = urlsplit(server.url)
        try:
            connection = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=pool.timeout)
            connection.request("GET", pool.check_path or "/")
            status = connection.getresponse().status
            connection.close()
            up = 200 <= status < 400
        except OSError:
            up = False
        if up != server.up:
            log(SERVICE, "info" if up else "warning", f"server {server.url} {'up' if up else 'down'}")
        server.up = up

    def pool_for(self, service: str) -> tuple[str, Pool] | None:
        """The loadBalancer a request to `service` goes to (through weighted services), or None."""
        with self.lock:
            routes = self.routes
        if service in routes.pools:
            return service, routes.pools[service]
        weighted = routes.weighted.get(service)
        if weighted is None:
            return None
        live = {name: w for name, w in weighted.children.items() if self._has_server_up(routes, name)}
        if not live:
            return None
        # Smooth weighted round robin (nginx's): each turn, every child gains its weight, the
        # highest is chosen and loses the total.
        with self.lock:
            for name, weight in live.items():
                weighted.current[name] = weighted.current.get(name, 0) + weight
            chosen = max(live, key=lambda name: weighted.current[name])
            weighted.current[chosen] -= sum(live.values())
        return self.pool_for(chosen)

    def _has_server_up(self, routes: Routes, service: str) -> bool:
        if service in routes.pools:
            return any(s.up for s in routes.pools[service].servers)
        weighted = routes.weighted.get(service)
        return weighted is not None and any(self._has_server_up(routes, child) for child in weighted.children)

    def router_for(self, entry_point: str, host: str, headers: dict[str, str]) -> Router | None:
        with self.lock:
            routers = list(self.routes.routers)
        return next((r for r in routers if r.matches(entry_point, host, headers)), None)

    def middleware(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self.routes.middlewares.get(name, {})


def handler_for(edge: Edge, entry_point: str, scheme: str, redirect_to: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            started = time.monotonic()
            headers = {key.lower(): value for key, value in self.headers.items()}
            host = headers.get("host", "")
            length = int(headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            if redirect_to is not None:
                self._send(308, b"", {"Location": f"{redirect_to}://{host.split(':')[0]}{self.path}"})
                return
            router = edge.router_for(entry_point, host, headers)
            if router is None:
                self._send(404, b"404 page not found\n", {"Content-Type": "text/plain"})
                return
            status, reply, reply_headers, service = self._through(router, headers, body)
            edge.metrics.record(service, status, self.command, time.monotonic() - started)
            self._send(status, reply, reply_headers)
            log(
                SERVICE,
                "info",
                "access",
                RouterName=f"{router.name}@file",
                ServiceName=f"{service}@file",
                RequestMethod=self.command,
                RequestPath=self.path,
                RequestHost=host,
                DownstreamStatus=status,
                Duration=round((time.monotonic() - started) * 1e9),
                entryPointName=entry_point,
            )

        def _through(
            self, router: Router, headers: dict[str, str], body: bytes
        ) -> tuple[int, bytes, dict[str, str], str]:
            added: dict[str, str] = {}
            attempts = 1
            for name in router.middlewares:
                spec = edge.middleware(name)
                if "rateLimit" in spec and not edge.limits.allow(name, spec["rateLimit"], self.client_address[0]):
                    return 429, b"Too Many Requests", {"Content-Type": "text/plain"}, router.service
                if "headers" in spec:
                    added |= security_headers(spec["headers"])
                if "retry" in spec:
                    attempts = max(1, int(spec["retry"].get("attempts", 1)))
            chosen = edge.pool_for(router.service)
            if chosen is None:
                return 503, b"no available server\n", {"Content-Type": "text/plain", **added}, router.service
            service, pool = chosen
            for attempt in range(attempts):
                server = pool.pick()
                if server is None:
                    break
                try:
                    status, reply, reply_headers = self._forward(server, pool, headers, body)
                    return status, reply, {**reply_headers, **added}, service
                except OSError:
                    if attempt + 1 == attempts:
                        break
            return 502, b"Bad Gateway", {"Content-Type": "text/plain", **added}, service

        def _forward(
            self, server: Server, pool: Pool, headers: dict[str, str], body: bytes
        ) -> tuple[int, bytes, dict[str, str]]:
            target = urlsplit(server.url)
            connection = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=30)
            forwarded = {k: v for k, v in headers.items() if k not in ("connection", "keep-alive", "host")}
            forwarded["Host"] = headers.get("host", "") if pool.pass_host else target.netloc
            forwarded["X-Forwarded-Proto"] = scheme
            forwarded["X-Forwarded-For"] = self.client_address[0]
            try:
                connection.request(self.command, self.path, body=body or None, headers=forwarded)
                response = connection.getresponse()
                reply = response.read()
                hop = {"connection", "keep-alive", "transfer-encoding", "content-length"}
                return response.status, reply, {k: v for k, v in response.getheaders() if k.lower() not in hop}
            finally:
                connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle  # noqa: N815 (http.server's names)

    return Handler


def self_signed_context() -> ssl.SSLContext:
    directory = Path(tempfile.mkdtemp(prefix="traefik-cert-"))
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"),
            *("-subj", "/CN=TRAEFIK DEFAULT CERT", "-keyout", str(directory / "key.pem")),
            *("-out", str(directory / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


class TlsServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext):
        super().__init__(address, handler)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


def main(arguments: list[str]) -> int:
    announce(SERVICE, KEEPS)
    configs = [a.split("=", 1)[1] for a in arguments if a.startswith("--configFile=")]
    if not configs:
        log(SERVICE, "error", "no --configFile given; not starting")
        return 1
    require_files(SERVICE, configs)
    try:
        static = yaml.safe_load(Path(configs[0]).read_text()) or {}
    except yaml.YAMLError as error:
        log(SERVICE, "error", f"{configs[0]} does not parse: {error}")
        return 1
    for resolver in (static.get("certificatesResolvers") or {}).values():
        storage = (resolver.get("acme") or {}).get("storage")
        if storage:
            require_directories(SERVICE, [Path(storage).parent], writable=True)
    directory = Path(((static.get("providers") or {}).get("file") or {}).get("directory", "/etc/traefik/dynamic"))
    require_directories(SERVICE, [directory], writable=False)
    prometheus = (static.get("metrics") or {}).get("prometheus") or {}
    edge = Edge(directory, [float(b) for b in prometheus.get("buckets", DEFAULT_BUCKETS)])
    ping_entry = (static.get("ping") or {}).get("entryPoint", "traefik")
    metrics_entry = prometheus.get("entryPoint", "traefik")
    secure = {
        (spec.get("http") or {}).get("redirections", {}).get("entryPoint", {}).get("to")
        for spec in (static.get("entryPoints") or {}).values()
    }
    context = self_signed_context()
    servers: list[ThreadingHTTPServer] = []
    for name, spec in (static.get("entryPoints") or {}).items():
        host, port = listen_address(spec["address"], 80)
        address = (host or "0.0.0.0", port)
        if name in (ping_entry, metrics_entry):
            servers.append(_internal_server(address, edge, ping=name == ping_entry, metrics=name == metrics_entry))
            continue
        redirect = (spec.get("http") or {}).get("redirections", {}).get("entryPoint")
        scheme = "https" if name in secure or port == 443 else "http"
        handler = handler_for(edge, name, scheme, redirect.get("scheme", "https") if redirect else None)
        servers.append(
            TlsServer(address, handler, context) if scheme == "https" else ThreadingHTTPServer(address, handler)
        )
    for server in servers:
        server.daemon_threads = True
    stopped = threading.Event()
    threading.Thread(target=edge.watch, args=(stopped,), daemon=True).start()
    try:
        return serve_until_stopped(SERVICE, list(servers))
    finally:
        stopped.set()


def _internal_server(address: tuple[str, int], edge: Edge, *, ping: bool, metrics: bool) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if ping and self.path == "/ping":
                status, body = 200, b"OK"
            elif metrics and self.path == "/metrics":
                status, body = 200, edge.metrics.render().encode()
            else:
                status, body = 404, b"404 page not found\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer(address, Handler)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
