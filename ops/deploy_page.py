"""Page the on-call when a prod deploy fails, naming who approved it.

    python -m ops.deploy_page        (in the deploy workflow, `if: failure()` of the prod job)

Reads who approved the run's `production` environment from GitHub's API
(`GET /repos/{repo}/actions/runs/{run_id}/approvals`), then triggers a PagerDuty incident through
the Events API v2, one per run (its dedup key), whose summary names the approvers and links
the run. The previous version is still serving (a failed `pulumi up` leaves it: docs/deploy.md),
so this is a page to look, not an outage by itself.

Environment: GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_SERVER_URL, GITHUB_API_URL, GITHUB_TOKEN
(the workflow's, `actions: read`) and PAGERDUTY_ROUTING_KEY (a secret of the `production`
environment). PAGERDUTY_EVENTS_URL overrides the Events API endpoint (tests). Exit status 0 when
PagerDuty accepted the event; 1 otherwise, with the reason: nobody was paged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
REQUIRED = ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_TOKEN", "PAGERDUTY_ROUTING_KEY")


class PageError(RuntimeError):
    pass


def _request(url: str, *, data: dict[str, Any] | None = None, headers: Mapping[str, str]) -> Any:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read() or b"null")
    except (urllib.error.URLError, TimeoutError) as error:
        raise PageError(f"{url}: {error}") from error


def approvers(env: Mapping[str, str]) -> list[str]:
    """The logins that approved this run's deployment, in the order they approved."""
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    url = f"{api}/repos/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}/approvals"
    headers = {
        "Authorization": f"Bearer {env['GITHUB_TOKEN']}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    reviews = _request(url, headers=headers) or []
    return [r["user"]["login"] for r in reviews if r.get("state") == "approved" and r.get("user")]


def event(env: Mapping[str, str], approved_by: list[str]) -> dict[str, Any]:
    """The PagerDuty Events API v2 trigger for this run."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    run_url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    who = ", ".join(f"@{login}" for login in approved_by) or "nobody on record"
    return {
        "routing_key": env["PAGERDUTY_ROUTING_KEY"],
        "event_action": "trigger",
        "dedup_key": f"audit-x-prod-deploy-{env['GITHUB_RUN_ID']}",
        "payload": {
            "summary": f"audit-x prod deploy failed (run {env['GITHUB_RUN_ID']}, approved by {who}); "
            "the previous version still serves",
            "source": "github-actions/deploy",
            "severity": "critical",
            "component": "deploy",
            "custom_details": {"approved_by": approved_by, "run": run_url, "commit": env.get("GITHUB_SHA", "")},
        },
        "links": [{"href": run_url, "text": "the failed run"}],
    }


def page(env: Mapping[str, str]) -> str:
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise PageError(f"{', '.join(missing)} not set")
    approved_by = approvers(env)
    answer = _request(
        env.get("PAGERDUTY_EVENTS_URL", PAGERDUTY_EVENTS_URL),
        data=event(env, approved_by),
        headers={"Content-Type": "application/json"},
    )
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise PageError(f"PagerDuty did not accept the event: {answer!r}")
    return f"paged the on-call (approved by {', '.join(approved_by) or 'nobody on record'}): {answer.get('dedup_key')}"


def main(env: Mapping[str, str] | None = None, argv: list[str] | None = None) -> int:
    # No options: the parser is there so that `--help` (or a typo) explains, and never pages.
    argparse.ArgumentParser(
        prog="python -m ops.deploy_page",
        description="Page the on-call through PagerDuty for a failed prod deploy (the deploy workflow's last step).",
        epilog="Reads its inputs from the environment: " + ", ".join(REQUIRED) + ".",
    ).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        print(page(os.environ if env is None else env))
    except PageError as error:
        print(f"nobody was paged: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
