"""`python -m ops status|logs|exec|console`: what each command runs on the stack's Docker host and
what it makes of the answers, against a stand-in `docker` (harness/fake_docker_cli.py) serving the
containers the plan declares, under their declared names and labels."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from components.app import LAUNCHER
from components.lib.tokens import label
from harness import fake_docker_cli
from harness.mock_engine import Plan, run_program
from ops.__main__ import main
from ops.environment import APP, APP_ROLES, JOBS, PLATFORM_SERVICES, Environment
from ops.status import ALERTS_COMMAND
from tests.helpers import fake_host

NOW_EPOCH = 1_800_000_000.0


@pytest.fixture(scope="module")
def prod() -> Plan:
    return run_program("prod")


def outputs(plan: Plan) -> dict[str, Any]:
    return plan.plain_outputs


def healthy_answers() -> dict[str, Any]:
    """What the runner and Grafana answer on a host where all is well."""
    return {
        "python -m runner status": {"stdout": json.dumps({"postgres": {"age_hours": 3.5}}), "exit": 0},
        "python -m runner pitr-status": {
            "stdout": json.dumps(
                {"age_hours": {"full": 30.0, "diff": 6.0}, "archiving": {"last_archived_at": 0, "failed_count": 0}}
            ),
            "exit": 0,
        },
        f"sh -c {ALERTS_COMMAND}": {"stdout": json.dumps({"data": {"alerts": []}}), "exit": 0},
    }


@pytest.fixture
def host(tmp_path: Path, prod: Plan, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state = fake_host(prod) | {"exec": healthy_answers()}
    for name, value in fake_docker_cli.install(tmp_path, state).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("ops.status.time.time", lambda: 42.0)
    return state


def rewrite(host: dict[str, Any], change: dict[str, Any], **where: str) -> None:
    for container in host["containers"]:
        if all(container["labels"].get(label(k)) == v for k, v in where.items()):
            container.update(change)
    Path(os.environ["FAKE_DOCKER_STATE"]).write_text(json.dumps(host))


def docker_calls() -> list[list[str]]:
    return fake_docker_cli.calls(dict(os.environ))


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_service_names_are_the_stacks_containers_output(stack: str) -> None:
    declared = run_program(stack).plain_outputs["containers"]
    environment = Environment.of(stack)
    assert set(PLATFORM_SERVICES) | set(APP_ROLES) == set(declared) - {"workers"}
    assert set(environment.services) == {APP, *PLATFORM_SERVICES, *APP_ROLES, *declared["workers"], *JOBS}


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_each_job_of_the_jobs_output_is_found_by_its_labels_alone(stack: str) -> None:
    plan = run_program(stack)
    host = fake_host(plan)
    environment = Environment.of(stack)
    assert set(plan.plain_outputs["jobs"]) - {"migrate"} <= set(JOBS)
    for job in plan.plain_outputs["jobs"]:
        selector = environment.selector(job)
        found = [c["name"] for c in host["containers"] if all(c["labels"].get(k) == v for k, v in selector.items())]
        assert len(found) == 1, (job, found)
        assert found[0].startswith(f"audit-x-{stack}-"), found


def test_restart_goes_one_container_at_a_time_and_refuses_jobs(
    host: dict[str, Any], prod: Plan, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["restart", "prod", "web"]) == 0
    web = sorted(outputs(prod)["containers"]["web"])
    restarts = [call[3] for call in docker_calls() if call[2] == "restart"]
    assert restarts == web
    assert capfd.readouterr().out.splitlines() == [f"{name} restarted and healthy" for name in web]
    assert main(["restart", "prod", "redis-password"]) == 2
    assert "restart: redis-password is a job" in capfd.readouterr().err


def test_status_of_a_healthy_environment(host: dict[str, Any], prod: Plan, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "prod"]) == 0
    out = capfd.readouterr().out
    assert f"release  {outputs(prod)['release']['image']}   no canary" in out
    for container in host["containers"]:
        assert container["name"] in out
    assert "backup postgres   newest 3.5 h ago" in out
    assert "pitr     full 30.0 h, diff 6.0 h ago; last WAL archived 42 s ago" in out
    assert "alerts   none firing" in out
    assert out.rstrip().endswith("all is well")
    listed = ["ps", "--all", "--filter", "label=io.audit-x.environment=prod", "--format", "{{.Names}}"]
    assert docker_calls()[0] == ["--host", outputs(prod)["dockerHost"], *listed]


def test_status_names_each_problem_and_exits_1(
    host: dict[str, Any], prod: Plan, capfd: pytest.CaptureFixture[str]
) -> None:
    web = outputs(prod)["containers"]["web"]
    rewrite(host, {"health": "unhealthy"}, role="web")
    rewrite(host, {"exit_code": 1}, role="migrate")
    host["exec"]["python -m runner status"]["stdout"] = json.dumps({"postgres": {"age_hours": 40.0}})
    host["exec"][f"sh -c {ALERTS_COMMAND}"]["stdout"] = json.dumps(
        {"data": {"alerts": [{"state": "firing", "labels": {"alertname": "web-5xx", "severity": "critical"}}]}}
    )
    rewrite(host, {})
    assert main(["status", "prod", "--json"]) == 1
    report = json.loads(capfd.readouterr().out)
    problems = report["problems"]
    assert {f"{name}: unhealthy" for name in web} <= set(problems)
    assert f"{outputs(prod)['containers']['migrate']}: exited 1" in problems
    assert "backup postgres: newest is 40.0 h old" in problems
    assert "1 alert(s) firing" in problems
    assert report["alerts"] == ["web-5xx (critical)"]


def test_exec_runs_in_the_service_container_the_labels_find(
    host: dict[str, Any], prod: Plan, capfd: pytest.CaptureFixture[str]
) -> None:
    host["exec"]["python -m runner status"] = {"stdout": '{"postgres": {}}\n', "exit": 0}
    rewrite(host, {})
    assert main(["exec", "prod", "backup", "--", "python", "-m", "runner", "status"]) == 0
    backup = outputs(prod)["containers"]["backup"]
    assert docker_calls()[-1] == [
        "--host",
        outputs(prod)["dockerHost"],
        "exec",
        backup,
        "python",
        "-m",
        "runner",
        "status",
    ]
    captured = capfd.readouterr()
    assert captured.out == '{"postgres": {}}\n'
    assert f"+ docker --host {outputs(prod)['dockerHost']} exec {backup} python -m runner status" in captured.err


def test_console_is_a_rails_console_through_the_launcher_in_the_first_web_container(
    host: dict[str, Any], prod: Plan
) -> None:
    assert main(["console", "prod"]) == 0
    first_web = sorted(outputs(prod)["containers"]["web"])[0]
    entrypoint = Environment.of("prod").settings.app.entrypoint
    assert docker_calls()[-1][2:] == ["exec", "-it", first_web, LAUNCHER, *entrypoint, "bin/rails", "console"]


def test_exec_with_the_apps_environment_only_in_app_containers(
    host: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["exec", "prod", "postgres", "--app-env", "--", "env"]) == 2
    assert "--app-env: postgres is not an app role" in capfd.readouterr().err


def test_exec_of_a_stopped_service_says_none_runs(host: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    rewrite(host, {"state": "exited"}, service="backup")
    assert main(["exec", "prod", "backup", "--", "true"]) == 1
    assert "exec failed: no running container of backup in prod" in capfd.readouterr().err


def test_logs_merge_stderr_prefix_each_container_and_grep(
    host: dict[str, Any], prod: Plan, capfd: pytest.CaptureFixture[str]
) -> None:
    rewrite(host, {"logs": ["GET /live 200", "stderr: FATAL connection refused"]}, role="web")
    assert main(["logs", "prod", "web", "--grep", "FATAL", "--since", "10m"]) == 0
    out = sorted(capfd.readouterr().out.splitlines())
    web = sorted(outputs(prod)["containers"]["web"])
    assert out == [f"{name} | stderr: FATAL connection refused" for name in web]
    logs = sorted(call[2:] for call in docker_calls() if call[2] == "logs")
    assert logs == [["logs", "--timestamps", "--tail", "200", "--since", "10m", name] for name in web]


def test_an_unknown_service_is_refused_naming_what_exists(
    host: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["logs", "prod", "webb"]) == 2
    err = capfd.readouterr().err
    assert "service: 'webb' is not one of prod's services; expected one of postgres," in err
    assert "sidekiq, karafka" in err
    assert docker_calls() == []


def test_rerun_starts_that_one_job_again_and_returns_its_exit_code(
    host: dict[str, Any], prod: Plan, capfd: pytest.CaptureFixture[str]
) -> None:
    stanza = next(c for c in host["containers"] if c["labels"].get(label("role")) == "pgbackrest")
    assert main(["rerun", "prod", "pgbackrest-stanza"]) == 0
    assert [call[2:] for call in docker_calls() if call[2] == "start"] == [["start", "--attach", stanza["name"]]]
    rewrite(host, {"exit_code": 3}, role="pgbackrest")
    assert main(["rerun", "prod", "pgbackrest-stanza"]) == 3
    assert f"pgbackrest-stanza ({stanza['name']}) exited 3" in capfd.readouterr().out
    assert main(["rerun", "prod", "web"]) == 2


def test_stop_and_start_the_app_are_every_web_and_worker_container(
    host: dict[str, Any], prod: Plan, capfd: pytest.CaptureFixture[str]
) -> None:
    declared = outputs(prod)["containers"]
    app = sorted([*declared["web"], *(name for names in declared["workers"].values() for name in names)])
    assert main(["stop", "prod", "app"]) == 0
    assert [call[2:] for call in docker_calls() if call[2] == "stop"] == [["stop", *app]]
    assert main(["start", "prod", "app"]) == 0
    assert [call[2:] for call in docker_calls() if call[2] == "start"] == [["start", *app]]
    assert main(["stop", "prod", "migrate"]) == 2
