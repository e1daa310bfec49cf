"""What `pulumi up` does to the running stack, under the providers' real update rules
(ops.preview, harness/update_model.py, harness/provider_behaviour.yaml): the scenarios a release,
a rotation or a resize go through, on both stacks, each asserting the steps and what is down."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

import components.app as app_component
import components.data.postgres as postgres_component
from components.lib import tokens
from components.lib.tokens import label
from components.observability.alerting import GRAFANA_UID_MAX, alert_rules, alerting_file
from components.settings import load_settings
from harness import update_model
from harness.mock_engine import REPO_ROOT, DeclaredResource, Plan, load_stack_config, run_program, try_program
from harness.pulumi_engine import preview as engine_json
from harness.update_model import (
    Step,
    Verdict,
    analyse,
    is_service,
    plan_steps,
    provider_urn,
    service_of,
    type_rules,
    verdict,
)
from ops import preview as preview_tool
from tests.helpers import container, labels

RELEASE = "app.image=registry.example/audit_x:release-check"
DATA_SERVICES = ("postgres", "redis", "redpanda", "influxdb")
ROTATION_TABLE = REPO_ROOT / "docs" / "secret-rotation.md"


@functools.cache
def preview(stack: str, *assignments: str) -> Verdict:
    return preview_tool.preview(stack, assignments)


def ops(result: Verdict, name: str) -> list[str]:
    return [step.op for step in result.steps if step.resource.name == name]


def index_of(result: Verdict, op: str, predicate: str) -> list[int]:
    return [i for i, s in enumerate(result.steps) if s.op == op and predicate in s.resource.name]


# --- the scenarios ------------------------------------------------------------------------------


def test_no_change_after_a_refresh_changes_nothing(stack: str) -> None:
    result = preview(stack)
    assert result.steps == []
    assert (result.replaced, result.down, result.cut) == (0, {}, [])


def test_a_release_leaves_nothing_down_and_backs_up_and_migrates_before_any_old_container_goes(stack: str) -> None:
    result = preview(stack, RELEASE)
    assert result.down == {}
    assert result.cut == []
    web_and_workers = [s for s in result.steps if "-web-" in s.resource.name or "-worker-" in s.resource.name]
    assert web_and_workers and all(not s.delete_first for s in web_and_workers)
    first_delete = min(index_of(result, "delete-replaced", "-web-") + index_of(result, "delete-replaced", "-worker-"))
    (migration,) = index_of(result, "create-replacement", f"audit-x-{stack}-migrate")
    (backup,) = index_of(result, "create-replacement", "backup-pre-migrate")
    (first_new_web,) = index_of(result, "create-replacement", "-web-0")
    (routes,) = index_of(result, "create-replacement", "edge-routes")
    assert backup < migration < first_new_web < routes < first_delete
    touched = {s.resource.name for s in result.steps}
    for untouched in (*DATA_SERVICES, "edge", "grafana", "collector", "loki", "alloy", "backup"):
        assert f"audit-x-{stack}-{untouched}" not in touched, untouched


def rotation_table() -> dict[str, str]:
    """docs/secret-rotation.md's table: secret -> the `down=` line it states."""
    rows = re.findall(r"^\| `([a-z-]+)` \|.*\| `(down=[a-z,]+)` \|$", ROTATION_TABLE.read_text(), re.MULTILINE)
    return dict(rows)


ROTATIONS = {
    "postgres-password": "1",
    "redis-password": "1",
    "grafana-admin-password": "2027-01",
    "secret-key-base": "2027-01",
}


@pytest.mark.parametrize("secret", sorted(ROTATIONS))
def test_each_rotation_does_what_the_rotation_doc_says(stack: str, secret: str) -> None:
    result = preview(stack, f"rotation.{secret}={ROTATIONS[secret]}")
    assert f"down={','.join(sorted(result.down)) or 'none'}" == rotation_table()[secret]
    replaced = {s.resource.name for s in result.steps if s.op == "create-replacement"}
    # No data service and no edge is ever replaced for a password.
    for service in (*DATA_SERVICES, "edge", "grafana"):
        assert f"audit-x-{stack}-{service}" not in replaced, service
    if secret == "postgres-password":
        assert {f"audit-x-{stack}-postgres-logins", f"audit-x-{stack}-backup", f"audit-x-{stack}-web-0"} <= replaced
    if secret == "grafana-admin-password":
        # The password, its copy in Secrets Manager, and the job that sets it in the running Grafana.
        assert f"audit-x-{stack}-grafana-admin-password" in replaced
        assert all("grafana-admin-password" in name for name in replaced)


def test_the_rotation_doc_lists_every_rotatable_secret() -> None:
    assert set(rotation_table()) == set(ROTATIONS)


def test_a_new_postgres_image_takes_postgres_down_alone_and_rebuilds_the_runner(stack: str) -> None:
    result = preview(stack, "postgres.image=postgres:17.7-bookworm")
    assert sorted(result.down) == ["postgres"]
    server = f"audit-x-{stack}-postgres"
    assert ops(result, server) == ["delete-replaced", "create-replacement"]
    # Only the server goes delete-first: nothing else is deleted early with it.
    assert [s.resource.name for s in result.steps if s.delete_first] == [server, server]
    assert "create-replacement" in ops(result, f"audit-x-{stack}-backup")


def test_a_data_services_memory_limit_is_changed_in_place() -> None:
    result = preview("prod", "postgres.memoryLimitMb=5120", "redis.memoryLimitMb=1536")
    assert sorted((s.op, s.resource.name, tuple(s.because)) for s in result.steps) == [
        ("update", "audit-x-prod-postgres", ("memory", "memorySwap")),
        ("update", "audit-x-prod-redis", ("memory", "memorySwap")),
    ]
    assert result.down == {}


def test_three_web_replicas_to_two_deletes_one_and_takes_nothing_down() -> None:
    result = preview("prod", "app.web.replicas=2")
    assert ops(result, "audit-x-prod-web-2") == ["delete"]
    assert result.down == {}


def test_one_web_replica_to_three_adds_two_and_takes_nothing_down() -> None:
    result = preview("staging", "app.web.replicas=3")
    assert ops(result, "audit-x-staging-web-1") == ops(result, "audit-x-staging-web-2") == ["create"]
    assert ops(result, "audit-x-staging-web-0") == []
    assert result.down == {}


# --- one test per finding of the issue on real update semantics --------------------------------


def test_finding_1_a_new_image_deletes_no_web_or_worker_container_first(stack: str) -> None:
    result = preview(stack, RELEASE)
    assert not [s for s in result.steps if s.delete_first]
    for resource in run_program(stack).of_type(tokens.CONTAINER):
        if labels(resource).get(label("lifecycle")) == "service" and labels(resource)[label("service")] == "app":
            assert (resource.delete_before_replace_defined, resource.delete_before_replace) == (True, False)


def test_finding_2_a_postgres_rotation_never_replaces_the_server(stack: str) -> None:
    result = preview(stack, "rotation.postgres-password=1")
    assert ops(result, f"audit-x-{stack}-postgres") == []
    assert "postgres" not in result.down


def test_finding_3_no_wait_is_cut_short_by_the_providers_create_timeout(plan: Plan) -> None:
    for resource in plan.of_type(tokens.CONTAINER):
        timeout = resource.custom_timeouts.get("create")
        assert timeout, f"{resource.name} has no create timeout of its own"
        seconds = int(timeout.removesuffix("s"))
        if not resource.inputs.get("attach"):
            assert seconds >= resource.inputs["waitTimeout"], resource.name
    runner = container(plan, "backup")
    assert runner.inputs["waitTimeout"] > 1200  # the provider's default would cut it


def test_finding_4_health_check_durations_read_back_unchanged(plan: Plan) -> None:
    for resource in plan.of_type(tokens.CONTAINER):
        for key in ("interval", "timeout", "startPeriod", "startInterval"):
            value = (resource.inputs.get("healthcheck") or {}).get(key)
            if value is not None:
                assert (re.fullmatch(r"(\d+h)?(\d+m)?\d+s", value) and not re.fullmatch(r"\d{2,}s", value)) or int(
                    value.removesuffix("s")
                ) < 60, (resource.name, key, value)


@pytest.mark.parametrize("environment", ["abcdefghijklmnop", "a1", "prod"])
def test_finding_5_every_alert_uid_fits_grafana_for_any_valid_environment_name(environment: str) -> None:
    settings = load_settings(load_stack_config("prod") | {"audit-x:environment": environment})
    document = yaml.safe_load(alerting_file(settings))
    uids = [rule["uid"] for group in document["groups"] for rule in group["rules"]]
    uids += [r["uid"] for point in document["contactPoints"] for r in point["receivers"]]
    assert len(uids) == len(set(uids)) >= len(alert_rules(settings))
    assert max(len(uid) for uid in uids) <= GRAFANA_UID_MAX
    assert all(uid.startswith(f"{environment}-") for uid in uids)


def test_finding_6_every_last_reads_rows_sorted_by_time(stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    for rule in alert_rules(settings):
        lines = [line.strip() for line in rule.query.text.splitlines()]
        for index, line in enumerate(lines):
            if line == "|> last()":
                assert lines[index - 1] == '|> sort(columns: ["_time"])', rule.key


def test_finding_7_postgres_gets_shared_memory_from_config(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    assert container(plan, "postgres").inputs["shmSize"] == settings.postgres.shm_size_mb >= 128


def test_finding_8_the_edge_never_reaches_a_container_before_it_is_ready(stack: str) -> None:
    result = preview(stack, RELEASE)
    assert not any("route" in reason for reasons in result.down.values() for reason in reasons)


def test_finding_9_a_failed_job_says_how_to_run_it_again_and_a_new_marker_does(stack: str) -> None:
    plan, error = try_program(stack, exit_codes={f"audit-x-{stack}-migrate": 1})
    assert error is not None and "deploy.rerunJobs" in str(error)
    assert not [c for c in plan.of_type(tokens.CONTAINER) if "-web-" in c.name]
    result = preview(stack, "deploy.rerunJobs=after-the-fix")
    jobs = {s.resource.name for s in result.steps if s.op == "create-replacement"}
    assert f"audit-x-{stack}-migrate" in jobs
    assert all(not s.delete_first for s in result.steps)
    # Only jobs run again: no long-running container is touched by a re-run.
    assert [s.resource.name for s in result.steps if is_service(s.resource)] == []


def test_finding_10_whatever_runs_the_migration_again_takes_a_fresh_backup_first() -> None:
    for change in (RELEASE, "rotation.postgres-password=1", "rotation.secret-key-base=x", "deploy.rerunJobs=x"):
        result = preview("prod", change)
        migration = index_of(result, "create-replacement", "audit-x-prod-migrate")
        backup = index_of(result, "create-replacement", "backup-pre-migrate")
        assert migration and backup and backup[0] < migration[0], change


def test_finding_11_a_new_postgres_image_gives_the_runner_a_new_pg_dump(stack: str) -> None:
    before = run_program(stack)
    after = run_program(stack, config=preview_tool.changed_config(stack, ["postgres.image=postgres:17.7-bookworm"]))
    assert container(after, "backup").inputs["image"] != container(before, "backup").inputs["image"]


@pytest.mark.parametrize("job", ["grafana-admin-password", "redpanda-lag-metrics", "redis-password"])
def test_finding_12_every_job_fails_the_update(job: str) -> None:
    _, error = try_program("staging", exit_codes={f"audit-x-staging-{job}": 1})
    assert error is not None and f"audit-x-staging-{job} exited with code 1" in str(error)


def test_finding_13_no_consumer_ever_holds_a_credential_its_server_refuses(stack: str) -> None:
    for secret in ("postgres-password", "redis-password"):
        result = preview(stack, f"rotation.{secret}=1")
        assert not any("credential" in r for reasons in result.down.values() for r in reasons), secret


# --- the model itself ---------------------------------------------------------------------------


def test_the_model_sees_what_the_old_design_did(stack: str) -> None:
    """The rules, on a fixed-name web container whose label carries a job's output: the job is
    replaced delete-first, and the engine deletes the web container before it (eagerly)."""
    plan = run_program(stack)
    job, web = container(plan, "migrate"), container(plan, "web-0")
    old_job = dataclasses.replace(job, delete_before_replace_defined=False)
    old_web = dataclasses.replace(web, delete_before_replace_defined=False, property_dependencies={"labels": [job.urn]})
    new_job = dataclasses.replace(old_job, plain_inputs=old_job.plain_inputs | {"image": "sha256:new"})
    steps = plan_steps([old_job, old_web], [new_job, old_web])
    assert [(s.op, s.resource.name, s.delete_first) for s in steps[:3]] == [
        ("delete-replaced", web.name, True),
        ("delete-replaced", job.name, True),
        ("create-replacement", job.name, True),
    ]
    assert sorted(analyse([old_job, old_web], steps).down) == ["web"]


def engine_preview(old: Plan, steps: list[Step]) -> dict:
    """`pulumi preview --json` as the engine prints it, for `steps` over the deployed `old`."""
    by_urn = {r.urn: r for r in old.resources}

    def state(resource: DeclaredResource) -> dict:
        return {
            "urn": resource.urn,
            "type": resource.type,
            "custom": not resource.type.startswith(tokens.COMPONENT_PREFIX),
            "inputs": resource.plain_inputs,
            "protect": resource.protect,
            **({"provider": resource.provider} if resource.provider else {}),
        }

    entries = []
    for step in steps:
        reasons = "diffReasons" if step.op == "update" else "replaceReasons"
        entry: dict = {"op": step.op, "urn": step.resource.urn, reasons: step.because}
        if step.resource.urn in by_urn:
            entry["oldState"] = state(by_urn[step.resource.urn]) | {"deleteBeforeReplace": step.delete_first}
        if step.op in ("create", "create-replacement", "update"):
            entry["newState"] = state(step.resource)
        entries.append(entry)
    untouched = {r.urn for r in old.resources} - {s.resource.urn for s in steps}
    entries += [
        {"op": "same", "urn": urn, "oldState": state(by_urn[urn]), "newState": state(by_urn[urn])} for urn in untouched
    ]
    return {"steps": entries, "changeSummary": {}}


def test_the_engines_own_steps_get_the_same_verdict(
    stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed = run_program(stack)
    released = run_program(stack, config=preview_tool.changed_config(stack, [RELEASE]))
    steps = plan_steps(deployed.resources, released.resources)
    document = tmp_path / "preview.json"
    document.write_text(json.dumps(engine_preview(deployed, steps)))
    assert preview_tool.main([stack, "--from-preview", str(document)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "down=none"
    # The same document with the old engine's order (web deleted first) says what it takes down.
    web = next(s for s in steps if s.op == "delete-replaced" and "-web-" in s.resource.name)
    early = [
        Step("delete-replaced", r.resource, delete_first=True)
        for r in steps
        if r.op == "delete-replaced" and "-web-" in r.resource.name
    ]
    rest = [s for s in steps if s.op != "delete-replaced" or "-web-" not in s.resource.name]
    document.write_text(json.dumps(engine_preview(deployed, early + rest)))
    assert preview_tool.main([stack, "--from-preview", str(document)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "down=web"
    assert web.resource.name.startswith(f"audit-x-{stack}-web-")


def test_json_output_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert preview_tool.main(["prod", "--set", RELEASE, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["down"] == [] and document["replaced"] == preview("prod", RELEASE).replaced
    assert set(document["steps"][0]) == {"op", "urn", "type", "name", "because", "delete_first"}


def test_text_output_ends_with_replaced_then_down(capsys: pytest.CaptureFixture[str]) -> None:
    assert preview_tool.main(["prod", "--set", RELEASE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [f"replaced={preview('prod', RELEASE).replaced}", "down=none"]


def test_a_bad_set_names_what_is_expected() -> None:
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        preview_tool.changed_config("prod", ["app.image"])


def test_a_logical_replace_alone_is_read_as_create_then_delete(stack: str) -> None:
    deployed = run_program(stack)
    web = container(deployed, "web-0")
    replaced_web = dataclasses.replace(web, plain_inputs=web.plain_inputs | {"name": f"{web.plain_inputs['name']}-new"})
    state = {"urn": web.urn, "type": web.type, "inputs": web.plain_inputs}
    document = {
        "steps": [
            {
                "op": "replace",
                "urn": web.urn,
                "oldState": state,
                "newState": state | {"inputs": replaced_web.plain_inputs},
            },
        ]
    }
    result = preview_tool.verdict_from_engine(document)
    assert [(s.op, s.delete_first) for s in result.steps] == [("create-replacement", False), ("delete-replaced", False)]
    assert result.down == {}


def test_a_release_of_the_program_is_previewed_from_the_commit_that_deployed_the_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--from-commit`: the earlier program's plan, from a git worktree, against this one. From
    this very commit nothing changes; a commit that is not there is refused, naming it."""
    assert preview_tool.main(["staging", "--from-commit", "HEAD"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-2:] == ["replaced=0", "down=none"]
    with pytest.raises(SystemExit, match="--from-commit 'no-such-commit'"):
        preview_tool.main(["staging", "--from-commit", "no-such-commit"])


# --- issue 27: what hurts prod most, each on both stacks, the answer derived from the rules ------


def services(plan: Plan) -> set[str]:
    return {service_of(r) for r in plan.resources if is_service(r)}


def docker_provider(plan: Plan) -> DeclaredResource:
    (provider,) = plan.of_type("pulumi:providers:docker")
    return provider


def managed_by(plan: Plan, provider: DeclaredResource) -> list[DeclaredResource]:
    return [r for r in plan.resources if provider_urn(r.provider) == provider.urn]


NEW_HOST = "ssh://deploy@docker-2.audit-x.example.com"


def test_a_new_docker_host_is_a_move_and_everything_is_down_until_it_is_done(stack: str) -> None:
    """The provider changes in place and keeps its ID: every resource stays "same", nothing is
    created on the new host. Not `replaced=0, down=none`: a move, every service down."""
    plan = run_program(stack)
    result = preview(stack, f"dockerHost={NEW_HOST}")
    provider = docker_provider(plan)
    assert [(s.op, s.resource.urn, s.because) for s in result.steps] == [("update", provider.urn, ["host"])]
    assert result.move is not None
    assert (result.move.before, result.move.after) == (load_stack_config(stack)["audit-x:dockerHost"], NEW_HOST)
    assert result.move.resources == len(managed_by(plan, provider)) > 0
    assert set(result.down) == services(plan)
    assert result.replaced == 0 and result.errors == []
    assert f"move={result.move.before} -> {NEW_HOST}" in result.summary_lines()
    # The procedure it points at exists: a heading of that document, by its anchor.
    document, anchor = result.move.as_json()["procedure"].split("#", 1)
    headings = re.findall(r"^#+ (.+)$", (REPO_ROOT / document).read_text(), re.MULTILINE)
    assert anchor in {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def test_replacing_the_protected_bucket_is_an_error_where_the_stack_protects_it(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = run_program(stack)
    (bucket,) = plan.of_type(tokens.BUCKET)
    change = f"backup.bucketName={bucket.plain_inputs['bucket']}-2"
    result = preview(stack, change)
    assert bucket.urn in result.urns("create-replacement")
    protected = load_settings(load_stack_config(stack)).protect_stateful_resources
    assert bucket.protect is protected
    expected = [("replace", bucket.urn)] if protected else []
    assert [(e.op, e.resource.urn) for e in result.errors] == expected
    assert preview_tool.main([stack, "--set", change]) == (2 if protected else 0)
    out = capsys.readouterr().out
    assert f"error={bucket.name if protected else 'none'}" in out.splitlines()
    if protected:
        assert f"pulumi state unprotect '{bucket.urn}'" in out


def test_removing_protected_resources_is_an_error_not_a_quiet_retain() -> None:
    """Prod without its seed: the seed's KMS key and masking-key secret would be deleted, and a
    protected resource cannot be deleted (retain_on_delete is read only after that check)."""
    plan = run_program("prod")
    result = preview_tool.preview("prod", [], removals=["stagingSeed"])
    deleted = {s.resource.urn for s in result.steps if s.op == "delete"}
    expected = sorted(r.urn for r in plan.resources if r.urn in deleted and r.protect)
    assert expected and sorted(e.resource.urn for e in result.errors) == expected
    assert {e.op for e in result.errors} == {"delete"}


def with_health_command(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setattr(postgres_component, "HEALTH_COMMAND", command)


NEW_PROBE = "pg_isready -q -h /var/run/postgresql && echo ok"


def test_a_new_health_check_reaches_a_fixed_name_container_by_replacing_it(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program names healthcheck and init in replace_on_changes of every fixed-name container,
    so a new probe replaces PostgreSQL (delete-first, as its name requires), and says what that
    costs; nothing is written to the state alone."""
    deployed = run_program(stack)
    with_health_command(monkeypatch, NEW_PROBE)
    changed = run_program(stack)
    result = verdict(deployed.resources, changed.resources)
    server = container(changed, "postgres")
    assert server.replace_on_changes == ["healthcheck", "init"]
    assert [(s.op, s.because, s.delete_first) for s in result.steps if s.resource.urn == server.urn] == [
        ("delete-replaced", ["healthcheck"], True),
        ("create-replacement", ["healthcheck"], True),
    ]
    assert result.state_only == [] and sorted(result.down) == ["postgres"]


def test_without_the_replace_trigger_a_health_check_changes_the_state_only(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same change to the program as it declared PostgreSQL before (no replace_on_changes):
    the provider's Update applies none of it; the model names it instead of counting it as done."""
    deployed = run_program(stack)
    with_health_command(monkeypatch, NEW_PROBE)
    changed = run_program(stack)
    server = container(changed, "postgres")
    before_fix = [
        dataclasses.replace(r, replace_on_changes=[]) if r.urn == server.urn else r for r in changed.resources
    ]
    result = verdict(deployed.resources, before_fix)
    rules = type_rules(tokens.CONTAINER)
    assert "healthcheck" in rules["state_only"] and "healthcheck" in rules["update"]
    assert [(s.op, s.resource.urn, s.because) for s in result.steps] == [("update", server.urn, ["healthcheck"])]
    assert [(r.urn, sorted(keys)) for r, keys in result.state_only] == [(server.urn, ["healthcheck"])]
    assert f"state_only={server.name}.healthcheck" in result.summary_lines()
    assert result.down == {} and result.replaced == 0


def test_a_rolling_containers_health_check_reaches_it_through_its_name(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = run_program(stack)
    monkeypatch.setattr(app_component, "web_health_command", lambda port: f"curl -fsS http://127.0.0.1:{port}/ready")
    changed = run_program(stack)
    result = verdict(deployed.resources, changed.resources)
    webs = [r for r in changed.of_type(tokens.CONTAINER) if "-web-" in r.name and "canary" not in r.name]
    assert webs and all(not r.replace_on_changes for r in webs)
    for web in webs:
        assert [(s.op, s.delete_first) for s in result.steps if s.resource.urn == web.urn] == [
            ("create-replacement", False),
            ("delete-replaced", False),
        ]
        # The name carries the revision, which the health check is part of: the name forces it.
        assert next(s.because for s in result.steps if s.resource.urn == web.urn) == ["name"]
        assert web.plain_inputs["healthcheck"] != deployed.named(web.name).plain_inputs["healthcheck"]
    assert result.state_only == [] and result.down == {}


def test_a_delete_first_restart_of_postgres_degrades_whatever_connects_to_it(stack: str) -> None:
    """Web, every worker role and the backup runner keep running while PostgreSQL is gone: they
    are degraded for at most the old server's stop grace plus the new one's health wait."""
    settings = load_settings(load_stack_config(stack))
    plan = run_program(stack)
    result = preview(stack, "postgres.image=postgres:17.7-bookworm")
    server = container(plan, "postgres")
    at_most = server.plain_inputs["destroyGraceSeconds"] + server.plain_inputs["waitTimeout"]
    assert sorted(result.degraded) == sorted({"web", "backup", *(w.name for w in settings.app.workers)})
    for losses in result.degraded.values():
        assert [(loss.dependency, loss.at_most_seconds) for loss in losses] == [("postgres", at_most)]
    assert f"degraded={','.join(sorted(result.degraded))} (at most {at_most} s)" in result.summary_lines()
    assert sorted(result.down) == ["postgres"]


def test_a_release_degrades_nothing(stack: str) -> None:
    assert preview(stack, RELEASE).degraded == {}


def test_a_role_removed_on_purpose_is_removed_not_down(stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    last = len(settings.app.workers) - 1
    role = settings.app.workers[last].name
    result = preview_tool.preview(stack, [], removals=[f"app.workers[{last}]"])
    plan = run_program(stack)
    expected = sorted(r.urn for r in plan.of_type(tokens.CONTAINER) if labels(r).get(label("role")) == role)
    assert expected and result.urns("delete") == expected
    assert result.removed == [role]
    assert result.down == {} and result.degraded == {}
    assert f"removed={role}" in result.summary_lines()


def test_a_bad_removal_path_names_the_expected_form() -> None:
    with pytest.raises(SystemExit, match=re.escape("expected a path such as app.canary or app.workers[1]")):
        preview_tool.changed_config("prod", [], removals=["app.workers[x"])


def replacing_provider_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules as they would be if the Docker provider's `host` forced a provider replacement
    (ForcesProviderReplace): it does not (provider_behaviour.yaml), so this tries the engine rule
    that a replaced provider replaces everything it manages."""
    rules = copy.deepcopy(update_model.behaviour())
    docker = rules["types"]["pulumi:providers:docker"]
    docker["replace"], docker["update"], docker["moves"] = ["host"], [k for k in docker["update"] if k != "host"], []
    monkeypatch.setattr(update_model, "behaviour", lambda: rules)


def test_a_replaced_provider_replaces_everything_it_manages(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    replacing_provider_host(monkeypatch)
    deployed = run_program(stack)
    moved = run_program(stack, config=preview_tool.changed_config(stack, [f"dockerHost={NEW_HOST}"]))
    result = verdict(deployed.resources, moved.resources)
    provider = docker_provider(deployed)
    managed = managed_by(deployed, provider)
    replaced = {s.resource.urn: s.because for s in result.steps if s.op == "create-replacement"}
    assert replaced.pop(provider.urn) == ["host"]
    assert replaced == {r.urn: ["provider"] for r in managed}
    assert result.move is None
    protected = sorted(r.urn for r in managed if r.protect)
    assert sorted(e.resource.urn for e in result.errors) == protected
    assert bool(protected) is load_settings(load_stack_config(stack)).protect_stateful_resources


def test_a_delete_first_provider_deletes_what_it_manages_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """calculateDependentReplacements reads a dependent's provider reference (URN::ID) by its URN."""
    replacing_provider_host(monkeypatch)
    deployed = run_program("staging")
    provider = dataclasses.replace(
        docker_provider(deployed), delete_before_replace=True, delete_before_replace_defined=True
    )
    old = [provider if r.urn == provider.urn else r for r in deployed.resources]
    new = [dataclasses.replace(provider, plain_inputs={"host": NEW_HOST}) if r.urn == provider.urn else r for r in old]
    steps = plan_steps(old, new)
    first_deletes = {s.resource.urn for s in steps[: steps.index(next(s for s in steps if s.op != "delete-replaced"))]}
    assert first_deletes == {provider.urn} | {r.urn for r in managed_by(deployed, provider)}


def test_the_json_lists_the_urns_the_engines_preview_can_be_compared_on(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    change = "postgres.image=postgres:17.7-bookworm"
    result = preview(stack, change)
    assert preview_tool.main([stack, "--set", change, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    server = container(run_program(stack), "postgres")
    assert document["delete_before_replace_urns"] == [server.urn]
    assert document["replaced_urns"] == sorted(s.resource.urn for s in result.steps if s.op == "create-replacement")
    assert len(document["replaced_urns"]) == document["replaced"] == result.replaced
    assert document["degraded"]["web"]["loses"] == ["postgres"]
    assert (document["error"], document["move"], document["state_only"], document["removed"]) == ([], None, [], [])


COMPARED = (
    "created_urns",
    "updated_urns",
    "replaced_urns",
    "delete_before_replace_urns",
    "deleted_urns",
    "error",
    "move",
    "state_only",
    "removed",
    "degraded",
    "down",
)


@pytest.mark.parametrize(
    ("change", "removal"),
    [
        (RELEASE, None),
        ("postgres.image=postgres:17.7-bookworm", None),
        (f"dockerHost={NEW_HOST}", None),
        ("backup.bucketName=audit-x-backups-moved", None),
        (None, "app.workers[1]"),
    ],
)
def test_the_engines_steps_and_the_models_give_one_json_to_compare(
    stack: str, change: str | None, removal: str | None
) -> None:
    """What the engine helper does with a real `pulumi preview --json`: the same JSON from the
    model's steps (`--set`) and from the engine's (`--from-preview`), compared key by key."""
    deployed = run_program(stack)
    config = preview_tool.changed_config(stack, [change] if change else [], removals=[removal] if removal else [])
    model = verdict(deployed.resources, run_program(stack, config=config).resources)
    engine = preview_tool.verdict_from_engine(engine_preview(deployed, model.steps))
    ours, theirs = model.as_json(), engine.as_json()
    assert {key: ours[key] for key in COMPARED} == {key: theirs[key] for key in COMPARED}
    assert set(ours) == set(theirs)


def test_the_pr_preview_posts_every_line_of_the_verdict() -> None:
    """preview.yml greps the verdict's lines by key: the keys are the ones the tool prints."""
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "preview.yml").read_text())
    step = next(s for s in workflow["jobs"]["preview"]["steps"] if s.get("name") == "What this change would take down")
    grepped = re.search(r"grep -E '\^\(([a-z_|]+)\)='", step["run"])
    assert grepped is not None
    printed = [line.split("=", 1)[0] for line in preview("prod").summary_lines()]
    assert grepped.group(1).split("|") == printed
    assert 'exit "$status"' in step["run"]


def deploy_doc_examples() -> list[tuple[list[str], list[str]]]:
    """docs/deploy.md's table of what the preview says for prod: (arguments, lines)."""
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    table = text.split("| `python -m ops.preview prod ...` | says |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", table, re.MULTILINE)
    return [(shlex.split(arguments), re.findall(r"`([a-z_]+=[^`]*)`", says)) for arguments, says in rows]


def test_the_deploy_docs_examples_are_what_the_tool_says() -> None:
    examples = deploy_doc_examples()
    assert len(examples) == 5
    for arguments, lines in examples:
        parser = argparse.ArgumentParser()
        parser.add_argument("--set", action="append", default=[])
        parser.add_argument("--rm", action="append", default=[])
        args = parser.parse_args(arguments)
        summary = preview_tool.preview("prod", args.set, removals=args.rm).summary_lines()
        assert lines and set(lines) <= set(summary), (arguments, summary)
        # What a row leaves out is none.
        named = {line.split("=", 1)[0] for line in lines}
        assert all(line.endswith("=none") for line in summary if line.split("=", 1)[0] not in named), arguments


def as_the_engine_writes(document: dict) -> dict:
    """The engine's own forms in a `pulumi preview --json` document: an input that holds a secret
    is one secret object as a whole (a list with one secret entry too), and a provider's Check
    lists the defaults it added under `__defaults`."""
    signature = {engine_json.SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": "[secret]"}

    def engine_form(inputs: dict, masked: dict) -> dict:
        converted = {key: signature if "[secret]" in json.dumps(masked.get(key)) else v for key, v in inputs.items()}
        return converted | {"__defaults": []}

    masked = {r.urn: r.inputs for plan in (run_program("prod"), run_program("staging")) for r in plan.resources}
    for entry in document["steps"]:
        for side in ("oldState", "newState"):
            if side in entry:
                state = entry[side]
                state["inputs"] = engine_form(state["inputs"], masked.get(state["urn"], {}))
    return document


def test_the_engines_masked_secrets_hide_connections_but_change_no_step(stack: str) -> None:
    """From the engine's JSON, secrets are masked: the steps, protection, moves and outages read
    the same; `degraded=` can only miss a connection named inside a secret, never invent one."""
    deployed = run_program(stack)
    config = preview_tool.changed_config(stack, ["postgres.image=postgres:17.7-bookworm"])
    model = verdict(deployed.resources, run_program(stack, config=config).resources)
    engine = preview_tool.verdict_from_engine(as_the_engine_writes(engine_preview(deployed, model.steps)))
    ours, theirs = model.as_json(), engine.as_json()
    same = [key for key in COMPARED if key != "degraded"]
    assert {key: ours[key] for key in same} == {key: theirs[key] for key in same}
    assert set(theirs["degraded"]) <= set(ours["degraded"])
    assert all(step.resource.plain_inputs.get("__defaults") is None for step in engine.steps)
