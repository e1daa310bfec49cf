"""The Grafana Alloy stand-in: `alloy run --server.http.listen-addr=ADDR --storage.path=DIR CONFIG`
(components/observability/logs.py).

It needs the config file (readable, its blocks balanced), the storage directory writable, and the
log directory the config's `__path__` globs point into (the read-only mount of
/var/lib/docker/containers) present; it answers `/-/ready` with 200 on the listen address (the
program's health check speaks HTTP/1.0 to it over bash's /dev/tcp). It ships no log line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from stand_in_service import (
    Response,
    announce,
    http_server,
    listen_address,
    log,
    require_directories,
    require_files,
    serve_until_stopped,
)

SERVICE = "alloy"
KEEPS = "`alloy run` with its config file, storage path and log mount; /-/ready on the listen address"
PATH_TARGET = re.compile(r'"__path__"\s*=\s*"([^"]+)"')


def option(arguments: list[str], name: str, default: str) -> str:
    for argument in arguments:
        if argument.startswith(f"--{name}="):
            return argument.split("=", 1)[1]
    return default


def main(arguments: list[str]) -> int:
    announce(SERVICE, KEEPS)
    if arguments[:1] != ["run"]:
        log(SERVICE, "error", f"only `alloy run ...` (got {arguments})")
        return 1
    configs = [a for a in arguments[1:] if not a.startswith("--")]
    if len(configs) != 1:
        log(SERVICE, "error", f"`alloy run` takes one config path (got {configs})")
        return 1
    require_files(SERVICE, configs)
    text = Path(configs[0]).read_text()
    if text.count("{") != text.count("}"):
        log(SERVICE, "error", f"{configs[0]}: unbalanced blocks")
        return 1
    require_directories(SERVICE, [option(arguments, "storage.path", "data-alloy/")], writable=True)
    # The directories the file_match globs read from: the part of each glob before its first `*`.
    log_dirs = [Path(glob.split("*", 1)[0]) for glob in PATH_TARGET.findall(text)]
    require_directories(SERVICE, log_dirs, writable=False)
    address = listen_address(option(arguments, "server.http.listen-addr", "127.0.0.1:12345"), 12345)
    server = http_server(
        (address[0] or "0.0.0.0", address[1]),
        {("GET", "/-/ready"): lambda _: Response.text(200, "Alloy is ready.\n")},
    )
    return serve_until_stopped(SERVICE, [server])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
