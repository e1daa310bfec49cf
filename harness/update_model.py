"""What `pulumi up` does to a running stack, under the real providers' and engine's rules.

Mocks echo inputs and know nothing of how an update runs. This module takes two records of the
program (the stack as deployed, the stack as changed), applies the rules kept as data in
`harness/provider_behaviour.yaml` (which inputs force a replacement, delete-before-replace
defaults, how inputs are read back, the engine's eager deletion of dependents), and says:

- the ordered steps (`create`, `update`, `delete`, `create-replacement`, `delete-replaced`), each
  with the inputs that force it and whether it is delete-first;
- for each service, whether there is a moment between two steps when it has no running, healthy
  container, when a consumer holds a credential its server no longer accepts, or when the edge
  can route to a container that is not ready (`down=`); which services lose a dependency for a
  moment, and for how long at most (`degraded=`); which were removed on purpose (`removed=`);
- what the engine refuses (`error=`: a protected resource replaced or deleted), a new Docker host
  (`move=`: the provider changes in place and every resource stays "same", on the old host), and
  the in-place updates the provider writes to the state without applying them (`state_only=`).

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
PROVIDER_PREFIX = "pulumi:providers:"
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


def is_provider(resource: DeclaredResource) -> bool:
    return resource.type.startswith(PROVIDER_PREFIX)


def provider_urn(reference: str | None) -> str | None:
    """A provider reference is `URN::ID` (sdk/go/common/resource/providers/reference.go): the URN
    is everything before the last `::`."""
    return reference.rsplit("::", 1)[0] if reference else None


def state_only_inputs(resource: DeclaredResource) -> dict[str, str]:
    """Inputs the provider's Update writes to the state without applying them, and what follows."""
    return dict(type_rules(resource.type).get("state_only") or {})


@dataclass
class Step:
    op: str
    resource: DeclaredResource
    because: list[str] = field(default_factory=list)
    delete_first: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "urn": self.resource.urn,
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


def _forced_by_option(resource: DeclaredResource, key: str) -> bool:
    """applyReplaceOnChanges (step_generator.go:3170): a changed input named by the resource's
    `replace_on_changes` (a path under it, or `*`) replaces it, whatever the provider said."""
    return any(path == "*" or path.split(".", 1)[0].split("[", 1)[0] == key for path in resource.replace_on_changes)


def classify(resource: DeclaredResource, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    rules = type_rules(resource.type)
    replace, update = set(rules["replace"]), set(rules["update"])
    keys = list(keys)
    unknown = [key for key in keys if key not in replace and key not in update]
    if unknown:
        raise KeyError(f"{resource.type} input(s) {', '.join(unknown)} are not in {BEHAVIOUR_FILE.name}")
    forcing = [k for k in keys if k in replace or _forced_by_option(resource, k)]
    return forcing, [k for k in keys if k not in forcing]


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
        r.urn: (
            {
                *r.dependencies,
                *(u for deps in r.property_dependencies.values() for u in deps),
                *([provider_urn(r.provider)] if r.provider else []),
            }
            & set(by_urn)
        )
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


def _carried_unknowns(resource: DeclaredResource, unknown_outputs: set[str], changed: Sequence[str]) -> list[str]:
    """During a preview, the inputs that carry an output not known yet (of a resource being
    created or replaced): unknown, so changed as far as the diff can tell."""
    return [
        key
        for key, deps in resource.property_dependencies.items()
        if unknown_outputs.intersection(deps) and key not in changed
    ]


def plan_steps(old: Sequence[DeclaredResource], new: Sequence[DeclaredResource], *, preview: bool = True) -> list[Step]:
    """The steps `pulumi up` takes from `old` (deployed) to `new` (declared), in order."""
    old, new = in_dependency_order(old), in_dependency_order(new)
    old_by_urn = {r.urn: r for r in old if not is_component(r)}
    steps: list[Step] = []
    at_end: list[Step] = []
    # Resources whose outputs are unknown while this update runs (created or being replaced).
    unknown_outputs: set[str] = set()
    already_deleted: set[str] = set()
    # Providers being replaced: every resource they manage is replaced with them
    # (step_generator.go:2921-2925, providerChanged: the new provider's DiffConfig said replace).
    replaced_providers: set[str] = set()

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
            changed += _carried_unknowns(resource, unknown_outputs, changed)
        replace_keys, update_keys = classify(resource, changed)
        if provider_urn(resource.provider) in replaced_providers:
            replace_keys, update_keys = ["provider"], []
        if is_provider(resource) and replace_keys:
            replaced_providers.add(resource.urn)
        if resource.urn in already_deleted:
            steps.append(Step("create-replacement", resource, replace_keys or changed, delete_first=True))
            unknown_outputs.add(resource.urn)
        elif replace_keys:
            unknown_outputs.add(resource.urn)
            if delete_first(resource):
                steps += _delete_dependents_first(before, old, already_deleted)
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


def _delete_dependents_first(
    root: DeclaredResource, old: Sequence[DeclaredResource], already_deleted: set[str]
) -> list[Step]:
    """The deletes a delete-before-replace of `root` starts with (step_generator.go:2047-2130), in
    reverse dependency order, each once per update."""
    steps = []
    for dependent, keys in reversed(_dependents_replaced_with(root, old)):
        if dependent.urn not in already_deleted:
            steps.append(Step("delete-replaced", dependent, keys, delete_first=True))
            already_deleted.add(dependent.urn)
    return steps


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
        if provider_urn(resource.provider) in replacing:
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


def _listed(value: Any) -> list[Any]:
    """A list input, or nothing where the engine's JSON masked it whole ("[secret]")."""
    return value if isinstance(value, list) else []


def hostnames(resource: DeclaredResource) -> set[str]:
    names = {str(resource.plain_inputs.get("name", resource.name))}
    for network in _listed(resource.plain_inputs.get("networksAdvanced")):
        names |= set(network.get("aliases") or []) if isinstance(network, dict) else set()
    return names


_SERVER_URL = re.compile(r"http://([a-z0-9.-]+):\d+")


def routing_table(resource: DeclaredResource) -> set[str] | None:
    """The hosts an edge's routes send traffic to, if this resource writes routes (the edge itself,
    or a job that writes its dynamic config)."""
    for upload in _listed(resource.plain_inputs.get("uploads")):
        content = upload.get("content") if isinstance(upload, dict) else None
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


@dataclass(frozen=True)
class ProtectError:
    """A step the engine refuses: a protected resource replaced or deleted."""

    op: str  # "replace" or "delete"
    resource: DeclaredResource

    @property
    def unprotect(self) -> str:
        return f"pulumi state unprotect '{self.resource.urn}'"

    def message(self) -> str:
        # step_generator.go:1957-1961 (replace: the preview fails, an update bails before the step),
        # step.go:618-623,647 (delete: the step fails, in a preview too).
        action = "replacing" if self.op == "replace" else "deleting"
        return (
            f"{action} {self.resource.name} fails: it is protected. `pulumi preview` errors, and `pulumi up` "
            f"stops at this step, after the steps before it ran. To do it on purpose: `{self.unprotect}` first"
        )

    def as_json(self) -> dict[str, Any]:
        return {"op": self.op, "urn": self.resource.urn, "name": self.resource.name, "unprotect": self.unprotect}


@dataclass(frozen=True)
class Move:
    """A provider whose change puts every resource it manages somewhere else (a new Docker host)."""

    provider: DeclaredResource
    key: str
    before: Any
    after: Any
    resources: int  # how many resources the provider manages

    def message(self) -> str:
        return (
            f"{self.provider.name} moves from {self.before} to {self.after}: the provider is updated in place and "
            f"its {self.resources} resources stay 'same', their state still the old host's; nothing is created on "
            f"the new host, a refresh there drops every container, volume and network from the state, and the "
            f"`pulumi up` after it recreates them with empty volumes. Move as docs/disaster-recovery.md says "
            f"(The Docker host is lost): refresh, a targeted up, restore, then up"
        )

    def summary(self) -> str:
        return f"{self.before} -> {self.after}"

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider.urn,
            "key": self.key,
            "from": self.before,
            "to": self.after,
            "resources": self.resources,
            "procedure": MOVE_PROCEDURE,
        }


MOVE_PROCEDURE = "docs/disaster-recovery.md#the-docker-host-is-lost"


@dataclass
class Loss:
    """A dependency a service loses for a moment: which, during what, and for how long at most."""

    dependency: str
    during: str
    at_most_seconds: float | None  # None: not back before the update ends

    def line(self) -> str:
        span = f"for at most {self.at_most_seconds:.0f} s" if self.at_most_seconds is not None else "until the end"
        return f"loses {self.dependency} {span}, from {self.during}"


@dataclass
class Verdict:
    steps: list[Step]
    down: dict[str, list[str]]  # service -> why
    cut: list[str] = field(default_factory=list)  # creates the provider's timeout would cut short
    errors: list[ProtectError] = field(default_factory=list)
    move: Move | None = None
    state_only: list[tuple[DeclaredResource, dict[str, str]]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # services whose every container is deleted on purpose
    degraded: dict[str, list[Loss]] = field(default_factory=dict)  # service -> what it loses

    @property
    def replaced(self) -> int:
        return sum(1 for step in self.steps if step.op == "create-replacement")

    def urns(self, *ops: str, delete_first: bool | None = None) -> list[str]:
        return sorted(
            {
                step.resource.urn
                for step in self.steps
                if step.op in ops and (delete_first is None or step.delete_first == delete_first)
            }
        )

    @property
    def degraded_at_most_seconds(self) -> float | None:
        spans = [loss.at_most_seconds for losses in self.degraded.values() for loss in losses]
        return None if not spans or None in spans else max(s for s in spans if s is not None)

    def summary_lines(self) -> list[str]:
        def listed(names: Iterable[str]) -> str:
            return ",".join(sorted(names)) or "none"

        degraded = listed(self.degraded)
        if self.degraded:
            most = self.degraded_at_most_seconds
            degraded += f" (at most {most:.0f} s)" if most is not None else " (until the end of the update)"
        state_only = [f"{r.name}.{key}" for r, keys in self.state_only for key in keys]
        return [
            f"error={listed(e.resource.name for e in self.errors)}",
            f"move={self.move.summary() if self.move else 'none'}",
            f"state_only={listed(state_only)}",
            f"removed={listed(self.removed)}",
            f"degraded={degraded}",
            f"replaced={self.replaced}",
            f"down={listed(self.down)}",
        ]

    def summary(self) -> str:
        return "\n".join(self.summary_lines())

    def lines(self) -> list[str]:
        lines = [step.line() for step in self.steps] or ["(no change)"]
        lines += [f"error: {error.message()}" for error in self.errors]
        if self.move:
            lines.append(f"move: {self.move.message()}")
        for resource, keys in self.state_only:
            lines += [f"state only: {resource.name} {key}: {why}" for key, why in keys.items()]
        lines += [f"removed: {service} (every container of it deleted on purpose)" for service in self.removed]
        for service, losses in sorted(self.degraded.items()):
            lines += [f"{service} degraded: {loss.line()}" for loss in losses]
        for service, reasons in sorted(self.down.items()):
            lines += [f"{service} down: {reason}" for reason in reasons]
        lines += [f"cut short: {problem}" for problem in self.cut]
        return [*lines, *self.summary_lines()]

    def as_json(self) -> dict[str, Any]:
        """One shape for the model's steps and the real engine's (`--from-preview`), so the two can
        be compared key by key: the URN lists first, then what the model concludes from them."""
        return {
            "steps": [step.as_json() for step in self.steps],
            "created_urns": self.urns("create"),
            "updated_urns": self.urns("update"),
            "replaced_urns": self.urns("create-replacement"),
            "delete_before_replace_urns": self.urns("create-replacement", delete_first=True),
            "deleted_urns": self.urns("delete"),
            "replaced": self.replaced,
            "error": [error.as_json() for error in self.errors],
            "move": self.move.as_json() if self.move else None,
            "state_only": [{"urn": r.urn, "name": r.name, "inputs": sorted(keys)} for r, keys in self.state_only],
            "removed": self.removed,
            "degraded": {
                service: {
                    "loses": sorted({loss.dependency for loss in losses}),
                    "at_most_seconds": None
                    if None in (spans := [loss.at_most_seconds for loss in losses])
                    else max(s for s in spans if s is not None),
                    "why": [loss.line() for loss in losses],
                }
                for service, losses in sorted(self.degraded.items())
            },
            "down": sorted(self.down),
            "why": {service: reasons for service, reasons in sorted(self.down.items())},
            "cut": self.cut,
        }


def protect_errors(old: Sequence[DeclaredResource], steps: Sequence[Step]) -> list[ProtectError]:
    """What the engine refuses: replacing a resource protected before and after
    (step_generator.go:1957, and :2111 for a dependent deleted first), deleting a protected one
    (step.go:647; `retain_on_delete` does not help: the check comes first)."""
    old_by_urn = {r.urn: r for r in old}
    errors: dict[str, ProtectError] = {}
    for step in steps:
        before = old_by_urn.get(step.resource.urn)
        if before is None or not before.protect or step.resource.urn in errors:
            continue
        if step.op == "create-replacement" and (step.resource.protect or step.delete_first):
            errors[step.resource.urn] = ProtectError("replace", before)
        elif step.op == "delete":
            errors[step.resource.urn] = ProtectError("delete", before)
    return list(errors.values())


def find_move(old: Sequence[DeclaredResource], steps: Sequence[Step]) -> Move | None:
    """An in-place update of a provider input that says where its resources are (`moves` in the
    behaviour file): the engine keeps the provider's ID, so no resource sees a new provider."""
    old_by_urn = {r.urn: r for r in old}
    for step in steps:
        before = old_by_urn.get(step.resource.urn)
        if step.op != "update" or before is None or not is_provider(step.resource):
            continue
        for key in type_rules(step.resource.type).get("moves") or []:
            if key in step.because:
                managed = sum(1 for r in old if provider_urn(r.provider) == step.resource.urn)
                return Move(
                    step.resource, key, before.plain_inputs.get(key), step.resource.plain_inputs.get(key), managed
                )
    return None


def state_only_updates(steps: Sequence[Step]) -> list[tuple[DeclaredResource, dict[str, str]]]:
    found = []
    for step in steps:
        if step.op != "update":
            continue
        rules = state_only_inputs(step.resource)
        keys = {key: rules[key] for key in step.because if key in rules}
        if keys:
            found.append((step.resource, keys))
    return found


# What a container is given to reach another service: `postgres:5432`, `redis://...@redis:6379/0`,
# `http://influxdb:8086`, `PGHOST=postgres`; its image (`postgres:17.6-bookworm`), labels and user
# names (`POSTGRES_USER=postgres`) name no connection.
_CONNECTION_INPUTS = ("envs", "uploads", "command", "entrypoints")


def consumers(services: Iterable[DeclaredResource]) -> dict[str, set[str]]:
    """service -> the services it connects to, by the host names (Docker names, network aliases)
    its environment, files and command name with a port or a path, or as a `*HOST` variable."""
    services = list(services)
    owner = {host: service_of(r) for r in services for host in hostnames(r)}
    if not owner:
        return {}
    names = "|".join(map(re.escape, sorted(owner, key=len, reverse=True)))
    pattern = re.compile(rf"(?<![\w.-])({names})(?=:\d+(?![\d.])|/)|\b[A-Z_]*HOST=({names})(?=\")")
    found: dict[str, set[str]] = {}
    for resource in services:
        text = json.dumps({k: v for k, v in resource.plain_inputs.items() if k in _CONNECTION_INPUTS})
        uses = {owner[a or b] for a, b in pattern.findall(text)} - {service_of(resource)}
        found.setdefault(service_of(resource), set()).update(uses)
    return found


def _stop_seconds(resource: DeclaredResource) -> float:
    """How long the provider's Delete may wait for the container to stop (destroy_grace_seconds,
    resource_docker_container_funcs.go:1085-1093)."""
    return float(resource.plain_inputs.get("destroyGraceSeconds") or 0)


def _health_wait_seconds(resource: DeclaredResource) -> float:
    """How long the provider's Create may wait for the new container to turn healthy (wait_timeout,
    60 s unless set)."""
    return float(resource.plain_inputs.get("waitTimeout", 60)) if resource.plain_inputs.get("wait") else 0.0


def _stale_credentials(
    running: Iterable[DeclaredResource], writers: Iterable[DeclaredResource], known: dict[str, set[str]]
) -> list[tuple[DeclaredResource, CredentialServer]]:
    """Running consumers whose every credential for a server is one the server no longer accepts."""
    writers = list(writers)
    found = []
    for server in CREDENTIAL_SERVERS:
        accepted = _accepted(writers, server)
        for resource in running:
            if _writes_credentials_of(resource, server):
                continue
            held = secret_values(resource.plain_inputs) & known[server.service]
            if held - accepted and not (held & accepted):
                found.append((resource, server))
    return found


def _down_at_the_end(groups: set[str], running: Iterable[DeclaredResource], move: Move | None) -> list[tuple[str, str]]:
    """What is still down once the steps are done: a service with no container left, and, after a
    move, every service until the move is carried out by hand."""
    alive = {service_of(r) for r in running}
    found = [(group, "no running container at the end of the update") for group in sorted(groups - alive)]
    if move is not None:
        why = f"until the move to {move.after} is done: its containers stay on {move.before}"
        found += [(group, why) for group in sorted(groups)]
    return found


def removed_services(old: Sequence[DeclaredResource], steps: Sequence[Step]) -> list[str]:
    """Services removed on purpose: every container of them deleted, none created. Not an outage."""
    deleted = {s.resource.urn for s in steps if s.op == "delete"}
    created = {
        service_of(s.resource) for s in steps if s.op in ("create", "create-replacement") and is_service(s.resource)
    }
    members: dict[str, list[str]] = {}
    for resource in old:
        if is_service(resource):
            members.setdefault(service_of(resource), []).append(resource.urn)
    return sorted(g for g, urns in members.items() if g not in created and all(u in deleted for u in urns))


class _Gaps:
    """The moments a service has no running container, and who loses it meanwhile."""

    def __init__(self, uses: dict[str, set[str]]) -> None:
        self.uses = uses
        # service -> (the step that took its last container, the services running then)
        self.open_since: dict[str, tuple[Step, set[str]]] = {}
        self.degraded: dict[str, list[Loss]] = {}

    def open(self, service: str, after: Step, alive: set[str]) -> None:
        if service not in self.open_since and after.op in ("delete", "delete-replaced"):
            self.open_since[service] = (after, alive)

    def close(self, service: str, back: DeclaredResource | None) -> None:
        """`service` is back with `back` (None: not before the update ends): the gap lasted at most
        the old container's stop plus the new one's health wait."""
        if service not in self.open_since:
            return
        step, alive = self.open_since.pop(service)
        until = _stop_seconds(step.resource) + _health_wait_seconds(back) if back is not None else None
        for consumer in sorted(alive):
            if service in self.uses.get(consumer, set()):
                loss = Loss(service, f"{step.op} of {step.resource.name}", until)
                self.degraded.setdefault(consumer, []).append(loss)

    def close_all(self) -> None:
        for service in sorted(self.open_since):
            self.close(service, None)


def analyse(old: Sequence[DeclaredResource], steps: Sequence[Step], *, credentials: bool = True) -> Verdict:
    """Walk the steps over the running containers and say which service is ever down, and why."""
    running: dict[tuple[str, str], DeclaredResource] = {(r.urn, "old"): r for r in old if is_service(r)}
    groups = {service_of(r) for r in running.values()}
    routes = next((table for r in old if (table := routing_table(r)) is not None), set())
    writers = {r.urn: r for r in old if _writes_any_credentials(r)}
    down: dict[str, list[str]] = {}

    removed = removed_services(old, steps)
    gaps = _Gaps(consumers([*running.values(), *(s.resource for s in steps if is_service(s.resource))]))

    def flag(service: str, why: str) -> None:
        # The first moment of each kind says enough: "no running container after X" once.
        reasons = down.setdefault(service, [])
        kind = why.split(" after ", maxsplit=1)[0]
        if not any(reason.split(" after ")[0] == kind for reason in reasons):
            reasons.append(why)

    known_credentials = {s.service: _accepted(old, s) for s in CREDENTIAL_SERVERS}

    def check(after: Step) -> None:
        alive = {service_of(r) for r in running.values()}
        for group in sorted(groups - alive - set(removed)):
            flag(group, f"no running container after {after.op} of {after.resource.name}")
            gaps.open(group, after, alive)
        for resource, server in (
            _stale_credentials(running.values(), writers.values(), known_credentials) if credentials else []
        ):
            flag(
                service_of(resource),
                f"holds a {server.service} credential it no longer accepts after {after.op} of {after.resource.name}",
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
                gaps.close(service_of(resource), resource)
            if _writes_any_credentials(resource):
                writers[resource.urn] = resource
            for server in CREDENTIAL_SERVERS:
                known_credentials[server.service] |= _accepted([resource], server)
            table = routing_table(resource)
            if table is not None:
                routes = table
        check(step)
    gaps.close_all()
    move = find_move(old, steps)
    for group, why in _down_at_the_end(groups - set(removed), running.values(), move):
        flag(group, why)
    return Verdict(
        list(steps),
        down,
        cut,
        errors=protect_errors(old, steps),
        move=move,
        state_only=state_only_updates(steps),
        removed=removed,
        degraded=gaps.degraded,
    )


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
