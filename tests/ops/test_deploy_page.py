"""The page on a failed prod deploy (ops/deploy_page.py), against stand-ins for GitHub's API and
PagerDuty's Events API on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ops import deploy_page

ROUTING_KEY = "R0UT1NGKEYsecretvalue0000000000"
APPROVALS = [
    {"state": "approved", "user": {"login": "alice"}, "environments": [{"name": "production"}]},
    {"state": "rejected", "user": {"login": "mallory"}, "environments": [{"name": "production"}]},
]


class StandIns:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.pagerduty_status = 202
        self.approvals: list[dict[str, Any]] = APPROVALS


@pytest.fixture
def stand_ins() -> Iterator[tuple[StandIns, str]]:
    state = StandIns()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, dict(self.headers), None))
            if self.path == "/repos/audit-x/infra/actions/runs/4242/approvals":
                self._answer(200, state.approvals)
            else:
                self._answer(404, {"message": "Not Found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(("POST", self.path, dict(self.headers), body))
            if state.pagerduty_status == 202:
                self._answer(202, {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]})
            else:
                self._answer(state.pagerduty_status, {"status": "invalid event", "message": "Event object is invalid"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def environment(base: str) -> dict[str, str]:
    return {
        "GITHUB_REPOSITORY": "audit-x/infra",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": base,
        "GITHUB_TOKEN": "ghs_workflowtoken",
        "GITHUB_SHA": "0123abc",
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": f"{base}/v2/enqueue",
    }


def test_a_failed_prod_deploy_pages_naming_who_approved_it(
    stand_ins: tuple[StandIns, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, base = stand_ins
    assert deploy_page.main(environment(base), []) == 0
    (get, post) = state.requests
    assert get[2]["Authorization"] == "Bearer ghs_workflowtoken"
    sent = post[3]
    assert sent["routing_key"] == ROUTING_KEY
    assert sent["event_action"] == "trigger"
    assert sent["dedup_key"] == "audit-x-prod-deploy-4242"  # one incident per run, however often it is sent
    assert sent["payload"]["severity"] == "critical"
    assert "approved by @alice" in sent["payload"]["summary"] and "mallory" not in sent["payload"]["summary"]
    assert sent["payload"]["custom_details"]["approved_by"] == ["alice"]
    assert sent["links"][0]["href"] == "https://github.com/audit-x/infra/actions/runs/4242"
    out = capsys.readouterr()
    assert "paged the on-call (approved by alice)" in out.out
    assert ROUTING_KEY not in out.out + out.err


def test_a_run_without_approvals_still_pages(stand_ins: tuple[StandIns, str]) -> None:
    state, base = stand_ins
    state.approvals = []
    assert deploy_page.main(environment(base), []) == 0
    assert "approved by nobody on record" in state.requests[-1][3]["payload"]["summary"]


def test_a_refused_event_or_a_missing_key_says_nobody_was_paged(
    stand_ins: tuple[StandIns, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, base = stand_ins
    state.pagerduty_status = 400
    assert deploy_page.main(environment(base), []) == 1
    assert "nobody was paged" in capsys.readouterr().err
    assert deploy_page.main(environment(base) | {"PAGERDUTY_ROUTING_KEY": ""}, []) == 1
    assert "nobody was paged: PAGERDUTY_ROUTING_KEY not set" in capsys.readouterr().err


def test_help_explains_and_sends_nothing_even_with_every_variable_set(
    stand_ins: tuple[StandIns, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, base = stand_ins
    with pytest.raises(SystemExit) as exited:
        deploy_page.main(environment(base), ["--help"])
    assert exited.value.code == 0
    assert "Page the on-call through PagerDuty" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        deploy_page.main(environment(base), ["--dry-run"])
    assert exited.value.code == 2
    assert state.requests == []
