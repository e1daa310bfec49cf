"""The stand-in's commands, as the program gives them to the app image (components/app.py):

    rails server             the web role          (app.web.command, `./bin/rails server`)
    rails db:migrate         the migration job     (`bin/rails db:migrate`)
    bundle exec NAME ...     a worker role         (a worker's `command`, e.g. `bundle exec sidekiq`)

bin/rails and bin/bundle call this with their own name first. A command it does not know, or a
variable the contract promises and the process lacks, exits 64 or 78 with a log line naming it.
"""

from __future__ import annotations

import sys

from . import migrations, web, worker
from .connections import ConnectionMonitor
from .environment import ContractError, check_contract
from .logs import log

USAGE = 64
CONFIG = 78


def role_of(argv: list[str]) -> tuple[str, str] | None:
    """(kind, name) for a command line: ("web", "web"), ("migrate", "migrate"), ("worker", NAME)."""
    match argv:
        case ["rails", "server", *_]:
            return "web", "web"
        case ["rails", "db:migrate", *_]:
            return "migrate", "migrate"
        case ["bundle", "exec", name, *_]:
            return "worker", name
        case _:
            return None


def main(argv: list[str]) -> int:
    role = role_of(argv)
    if role is None:
        log("ERROR", f"the app stand-in does not know the command {' '.join(argv)!r}")
        return USAGE
    kind, name = role
    try:
        check_contract(kind)
    except ContractError as error:
        log("FATAL", f"not starting: {error}")
        return CONFIG
    if kind == "migrate":
        return migrations.migrate()
    if kind == "web":
        return web.serve(ConnectionMonitor())
    return worker.run(ConnectionMonitor(), name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
