"""What `pulumi up` does to a running stack, under the real providers' and engine's rules.

Mocks echo inputs and know nothing of how an update runs. This module takes two records of the
program (the stack as deployed, the stack as changed), applies the rules kept as data in
`harness/provider_behaviour.yaml` (which inputs force a replacement, delete-before-replace
defaults, how inputs are read back, the engine's eager deletion of dependents), and says:

- the ordered steps (`create`, `update`, `delete`, `create-replacement`, `delete-replaced`), each
  with the inputs that force it and whether it is delete-first;
- for each service, whether there is a moment between two steps when it has no running, healthy
  container, when a consumer holds a credential its server no longer accepts, or when the edge
  can route to a container that is not ready.

The deployed side is read back as a refresh would (durations in Go's format), so a no-change
update shows what every `pulumi preview --refresh` would show.
"""

from __future__ import annotations

import functools
import heapq
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.lib.durations import go_duration, parse_seconds
from components.lib.tokens import COMPONENT_PREFIX, CONTAINER, label, labels_of
from harness.mock_engine import DeclaredResource

BEHAVIOUR_FILE = Path(__file__).resolve().parent / "provider_behaviour.yaml"
OPS = ("create", "update", "delete", "create-replacement", "delete-replaced")


@functools.cache
def behaviour() -> dict[str, Any]:
    return yaml.safe_load(BEHAVIOUR_FILE.read_text())


def type_rules(type_: str) -> dict[str, Any]:
    rules = behaviour()["types"].get(type_)
    if rules is None:
        raise KeyError(f"{type_} is not in {BEHAVIOUR_FILE.name}: add what its provider does on update")
    return rules


def read_back(resource: DeclaredResource) -> dict[str, Any]:
    """The resource's inputs as the provider writes them into the state on a refresh."""
    state = json.loads(json.dumps(resource.plain_inputs))
    for path, rule in (type_rules(resource.type).get("read_back") or {}).items():
        head, _, leaf = path.partition(".")
        holder = state.get(head)
        if isinstance(holder, dict) and leaf in holder and rule == "go_duration":
            holder[leaf] = go_duration(holder[leaf])
    return state


def is_component(resource: DeclaredResource) -> bool:
    return resource.type.startswith(COMPONENT_PREFIX)


@dataclass
class Step:
    op: str
    resource: DeclaredResource
    because: list[str] = field(default_factory=list)
    delete_first: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "type": self.resource.type,
            "name": self.resource.name,
            "because": self.because,
            "delete_first": self.delete_first,
        }

    def line(self) -> str:
        why = f" because {', '.join(self.because)} changed" if self.because else ""
        first = " (delete-first)" if self.delete_first else ""
        return f"{self.op:<18} {self.resource.type.rsplit(':', 1)[-1]:<14} {self.resource.name}{why}{first}"


def _changed_inputs(old: DeclaredResource, new: DeclaredResource) -> list[str]:
    state = read_back(old)
    keys = sorted(set(state) | set(new.plain_inputs))
    return [key for key in keys if state.get(key) != new.plain_inputs.get(key)]


def classify(resource: DeclaredResource, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    rules = type_rules(resource.type)
    replace, update = set(rules["replace"]), set(rules["update"])
    unknown = [key for key in keys if key not in replace and key not in update]
    if unknown:
        raise KeyError(f"{resource.type} input(s) {', '.join(unknown)} are not in {BEHAVIOUR_FILE.name}")
    return [k for k in keys if k in replace], [k for k in keys if k in update]


def delete_first(resource: DeclaredResource) -> bool:
    """The option when the program set it, else the provider's default (an unset option is not False)."""
    if resource.delete_before_replace_defined:
        return resource.delete_before_replace
    return bool(type_rules(resource.type)["delete_before_replace"])


def in_dependency_order(resources: Sequence[DeclaredResource]) -> list[DeclaredResource]:
    """The resources in an order the engine could register them: each after what it depends on,
    resources that do not depend on each other by name. (The program's own registration order
    varies from run to run among independent resources; this one does not.)"""
    by_urn = {r.urn: r for r in resources}
    waits_for = {
        r.urn: ({*r.dependencies, *(u for deps in r.property_dependencies.values() for u in deps)} & set(by_urn))
        - {r.urn}
        for r in resources
    }
    ready = sorted((r.name, r.urn) for r in resources if not waits_for[r.urn])
    heapq.heapify(ready)
    ordered: list[DeclaredResource] = []
    while ready:
        _, urn = heapq.heappop(ready)
        ordered.append(by_urn[urn])
        for other, pending in waits_for.items():
            if urn in pending:
                pending.discard(urn)
                if not pending:
                    heapq.heappush(ready, (by_urn[other].name, other))
    if len(ordered) != len(resources):
        raise ValueError("the declared resources depend on each other in a cycle")
    return ordered


def plan_steps(old: Sequence[DeclaredResource], new: Sequence[DeclaredResource], *, preview: bool = True) -> list[Step]:
    """The steps `pulumi up` takes from `old` (deployed) to `new` (declared), in order."""
    old, new = in_dependency_order(old), in_dependency_order(new)
    old_by_urn = {r.urn: r for r in old if not is_component(r)}
    steps: list[Step] = []
    at_end: list[Step] = []
    # Resources whose outputs are unknown while this update runs (created or being replaced).
    unknown_outputs: set[str] = set()
    already_deleted: set[str] = set()

    for resource in new:
        if is_component(resource):
            continue
        before = old_by_urn.get(resource.urn)
        if before is None:
            steps.append(Step("create", resource))
            unknown_outputs.add(resource.urn)
            continue
        changed = _changed_inputs(before, resource)
        if preview:
            carried = [
                key
                for key, deps in resource.property_dependencies.items()
                if unknown_outputs.intersection(deps) and key not in changed
            ]
            changed += carried
        replace_keys, update_keys = classify(resource, changed)
        if resource.urn in already_deleted:
            steps.append(Step("create-replacement", resource, replace_keys or changed, delete_first=True))
            unknown_outputs.add(resource.urn)
        elif replace_keys:
            unknown_outputs.add(resource.urn)
            if delete_first(resource):
                dependents = _dependents_replaced_with(before, old)
                for dependent, keys in reversed(dependents):
                    if dependent.urn not in already_deleted:
                        steps.append(Step("delete-replaced", dependent, keys, delete_first=True))
                        already_deleted.add(dependent.urn)
                steps.append(Step("delete-replaced", before, replace_keys, delete_first=True))
                steps.append(Step("create-replacement", resource, replace_keys, delete_first=True))
            else:
                steps.append(Step("create-replacement", resource, replace_keys))
                at_end.append(Step("delete-replaced", before, replace_keys))
        elif update_keys:
            steps.append(Step("update", resource, update_keys))

    new_urns = {r.urn for r in new}
    removed = [Step("delete", r) for r in old if not is_component(r) and r.urn not in new_urns]
    # The engine deletes what it replaced and what is gone at the end, in reverse dependency order.
    return steps + list(reversed(at_end)) + list(reversed(removed))


def _dependents_replaced_with(
    root: DeclaredResource, old: Sequence[DeclaredResource]
) -> list[tuple[DeclaredResource, list[str]]]:
    """calculateDependentReplacements: the transitive dependents a delete-before-replace of `root`
    deletes first: those whose replace-forcing inputs carry an output of a resource being replaced."""
    replacing = {root.urn}
    found: list[tuple[DeclaredResource, list[str]]] = []
    for resource in old:
        if is_component(resource) or resource.urn in replacing:
            continue
        if resource.provider and resource.provider.split("::")[0] in replacing:
            replacing.add(resource.urn)
            found.append((resource, ["provider"]))
            continue
        carried = [key for key, deps in resource.property_dependencies.items() if replacing.intersection(deps)]
        forcing, _ = classify(resource, carried)
        if forcing:
            replacing.add(resource.urn)
            found.append((resource, forcing))
    return found


# --- availability -------------------------------------------------------------------------------


def labels(resource: DeclaredResource) -> dict[str, str]:
    return labels_of(resource.plain_inputs)


def is_service(resource: DeclaredResource) -> bool:
    return resource.type == CONTAINER and not resource.plain_inputs.get("attach")


def service_of(resource: DeclaredResource) -> str:
    """The name `down=` uses: the role for the app's roles (web, sidekiq, ...), else the service."""
    found = labels(resource)
    service = found.get(label("service"), resource.name)
    return found.get(label("role"), service) if service == "app" else service


def hostnames(resource: DeclaredResource) -> set[str]:
    names = {str(resource.plain_inputs.get("name", resource.name))}
    for network in resource.plain_inputs.get("networksAdvanced", []):
        names |= set(network.get("aliases") or [])
    return names


_SERVER_URL = re.compile(r"http://([a-z0-9.-]+):\d+")


def routing_table(resource: DeclaredResource) -> set[str] | None:
    """The hosts an edge's routes send traffic to, if this resource writes routes (the edge itself,
    or a job that writes its dynamic config)."""
    for upload in resource.plain_inputs.get("uploads", []):
        content = upload.get("content")
        if not isinstance(content, str) or "loadBalancer" not in content:
            continue
        document = yaml.safe_load(content) or {}
        services = (document.get("http") or {}).get("services") or {}
        hosts: set[str] = set()
        for name, service in services.items():
            if name == "grafana":
                continue
            for server in (service.get("loadBalancer") or {}).get("servers", []):
                match = _SERVER_URL.match(server.get("url", ""))
                if match:
                    hosts.add(match.group(1))
        return hosts
    return None


@dataclass(frozen=True)
class CredentialServer:
    """A server whose accepted credentials are the secret values in what `writers` upload."""

    service: str
    writer_roles: frozenset[str]


# PostgreSQL and Redis accept what their password jobs last set (their own containers carry no
# password); a server whose container is given the password itself would be listed by its role.
CREDENTIAL_SERVERS = (
    CredentialServer("postgres", frozenset({"password", "logins"})),
    CredentialServer("redis", frozenset({"password", "queue"})),
)
_SECRET_VALUE = re.compile(r"MOCKSECRET[0-9a-f]{24}")


def secret_values(value: Any) -> set[str]:
    """The generated secret values inside some inputs (the mock engine's are unmistakable)."""
    return set(_SECRET_VALUE.findall(json.dumps(value)))


def _writes_credentials_of(resource: DeclaredResource, server: CredentialServer) -> bool:
    found = labels(resource)
    return found.get(label("service")) == server.service and found.get(label("role")) in server.writer_roles


def _writes_any_credentials(resource: DeclaredResource) -> bool:
    return any(_writes_credentials_of(resource, server) for server in CREDENTIAL_SERVERS)


def _accepted(resources: Iterable[DeclaredResource], server: CredentialServer) -> set[str]:
    values: set[str] = set()
    for resource in resources:
        if _writes_credentials_of(resource, server):
            values |= secret_values(resource.plain_inputs.get("uploads", []))
    return values


@dataclass
class Verdict:
    steps: list[Step]
    down: dict[str, list[str]]  # service -> why
    cut: list[str] = field(default_factory=list)  # creates the provider's timeout would cut short

    @property
    def replaced(self) -> int:
        return sum(1 for step in self.steps if step.op == "create-replacement")

    def summary(self) -> str:
        down = ",".join(sorted(self.down)) or "none"
        return f"replaced={self.replaced}\ndown={down}"

    def lines(self) -> list[str]:
        lines = [step.line() for step in self.steps] or ["(no change)"]
        for service, reasons in sorted(self.down.items()):
            lines += [f"{service} down: {reason}" for reason in reasons]
        lines += [f"cut short: {problem}" for problem in self.cut]
        return [*lines, self.summary()]

    def as_json(self) -> dict[str, Any]:
        return {
            "steps": [step.as_json() for step in self.steps],
            "down": sorted(self.down),
            "why": {service: reasons for service, reasons in sorted(self.down.items())},
            "replaced": self.replaced,
            "cut": self.cut,
        }


def analyse(old: Sequence[DeclaredResource], steps: Sequence[Step], *, credentials: bool = True) -> Verdict:
    """Walk the steps over the running containers and say which service is ever down, and why."""
    running: dict[tuple[str, str], DeclaredResource] = {(r.urn, "old"): r for r in old if is_service(r)}
    groups = {service_of(r) for r in running.values()}
    routes = next((table for r in old if (table := routing_table(r)) is not None), set())
    writers = {r.urn: r for r in old if _writes_any_credentials(r)}
    down: dict[str, list[str]] = {}

    def flag(service: str, why: str) -> None:
        # The first moment of each kind says enough: "no running container after X" once.
        reasons = down.setdefault(service, [])
        kind = why.split(" after ", maxsplit=1)[0]
        if not any(reason.split(" after ")[0] == kind for reason in reasons):
            reasons.append(why)

    known_credentials = {s.service: _accepted(old, s) for s in CREDENTIAL_SERVERS}

    def check(after: Step) -> None:
        alive = {service_of(r) for r in running.values()}
        for group in sorted(groups - alive):
            flag(group, f"no running container after {after.op} of {after.resource.name}")
        if not credentials:
            return
        for server in CREDENTIAL_SERVERS:
            accepted = _accepted(writers.values(), server)
            for resource in running.values():
                if _writes_credentials_of(resource, server):
                    continue
                held = secret_values(resource.plain_inputs) & known_credentials[server.service]
                stale = held - accepted
                if stale and not (held & accepted):
                    flag(
                        service_of(resource),
                        f"holds a {server.service} credential it no longer accepts"
                        f" after {after.op} of {after.resource.name}",
                    )

    cut: list[str] = []
    for step in steps:
        resource = step.resource
        if step.op in ("create", "create-replacement") and (problem := create_cut_short(resource)):
            cut.append(problem)
        if step.op in ("delete", "delete-replaced"):
            running.pop((resource.urn, "old"), None)
            # What a job set stays set in its server after the job's container is gone; a server
            # that holds its own password accepts nothing once it is gone.
            if is_service(resource):
                writers.pop(resource.urn, None)
        elif step.op in ("create", "create-replacement", "update"):
            if is_service(resource) and step.op != "update":
                # Until its create step ends (the provider waits for the health check), the new
                # container is not ready; if the edge's routes reach it by a shared name, the edge
                # can send it requests already.
                if hostnames(resource) & routes and resource.plain_inputs.get("name") not in routes:
                    flag(service_of(resource), f"the edge can route to {resource.name} before it is ready")
                running[(resource.urn, "new")] = resource
            if _writes_any_credentials(resource):
                writers[resource.urn] = resource
            for server in CREDENTIAL_SERVERS:
                known_credentials[server.service] |= _accepted([resource], server)
            table = routing_table(resource)
            if table is not None:
                routes = table
        check(step)
    for group in sorted(groups):
        if group not in {service_of(r) for r in running.values()}:
            flag(group, "no running container at the end of the update")
    return Verdict(list(steps), down, cut)


def create_timeout_seconds(resource: DeclaredResource) -> float:
    """The create timeout the provider applies: custom_timeouts, else its own default."""
    custom = resource.custom_timeouts.get("create")
    if custom:
        return parse_seconds(custom)
    return float((type_rules(resource.type).get("timeouts") or {}).get("create", float("inf")))


def create_cut_short(resource: DeclaredResource) -> str | None:
    """A container whose health wait outlasts its create timeout: the provider gives up first."""
    if not is_service(resource) or not resource.plain_inputs.get("wait"):
        return None
    wait = float(resource.plain_inputs.get("waitTimeout", 60))
    limit = create_timeout_seconds(resource)
    if wait > limit:
        return f"{resource.name}: the {wait:.0f} s health wait is cut at {limit:.0f} s by the create timeout"
    return None


def verdict(old: Sequence[DeclaredResource], new: Sequence[DeclaredResource], *, preview: bool = True) -> Verdict:
    return analyse(old, plan_steps(old, new, preview=preview))
