"""Run the real program under Pulumi's mock engine, with a stack's real config, and record it.

No Pulumi CLI, no Docker engine and no cloud account is needed: the mocks stand in for the
providers, echo inputs back and make up the values only a provider would know (ids, ARNs,
generated passwords, a job's exit code). What the program declares is recorded as it reaches
the engine: type, name, parent, inputs (secrets masked), resource options and stack outputs.

Used by `ops.plan`, by the tests and by anything else that needs to know what a stack declares.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import runpy
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks

from components.lib import tokens
from components.settings.stack_file import read_stack_file
from harness import pulumi_sdk

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGRAM = REPO_ROOT / "__main__.py"
PROJECT = "audit-x"
MASK = "[secret]"
ACCOUNT_ID = "123456789012"


def stack_config_path(stack: str) -> Path:
    return REPO_ROOT / f"Pulumi.{stack}.yaml"


def stack_names() -> list[str]:
    return sorted(p.name.split(".")[1] for p in REPO_ROOT.glob("Pulumi.*.yaml"))


# Encrypted (`secure:`) config cannot be read without the stack's secrets provider. It still
# counts as set: each key gets a masked stand-in of the right form (its validator accepts it), so
# the offline plan declares what `pulumi up` will (the Slack and PagerDuty routes, the Sentry
# wiring, the SMTP password file). The stand-ins are unmistakable, and always passed as secrets.
SECURE_STAND_INS = {
    "audit-x:sentryDsn": "https://offline-plan-stand-in@sentry.invalid/1",
    "audit-x:slackWebhookUrl": "https://hooks.slack.com/services/OFFLINE/PLAN/stand-in",
    "audit-x:pagerdutyRoutingKey": "OfflinePlanStandIn00000000000000",
    "audit-x:smtpPassword": "offline-plan-stand-in",
    "audit-x:pagerdutyCloudwatchUrl": "https://events.pagerduty.com/integration/OfflinePlanStandIn00000000000000/enqueue",
}
GENERIC_STAND_IN = "offline-plan-stand-in"


def load_stack_config(stack: str, path: Path | None = None) -> dict[str, str]:
    """A stack file's config the way the Pulumi CLI hands it to the program: strings and JSON,
    with a stand-in for every encrypted value (`secret_keys` names them)."""
    path = path or stack_config_path(stack)
    if not path.exists():
        known = ", ".join(stack_names()) or "none"
        raise SystemExit(f"unknown stack {stack!r}: no {path.name} (stacks: {known})")
    # As strictly as the Pulumi CLI: a key defined twice, an anchor or an alias is an error.
    document = read_stack_file(path)
    config: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECURE_STAND_INS.get(key, GENERIC_STAND_IN)
            continue
        if isinstance(value, str):
            config[key] = value
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            config[key] = str(value)
        else:
            config[key] = json.dumps(value)
    return config


def secret_keys(config: Mapping[str, str]) -> set[str]:
    """The keys of a stack's config that hold a stand-in for an encrypted value."""
    stand_ins = {*SECURE_STAND_INS.values(), GENERIC_STAND_IN}
    return {key for key, value in config.items() if value in stand_ins}


def fake_secret(seed: str) -> str:
    """A stand-in for a generated secret: unmistakable, so tests can look for leaks of it."""
    return "MOCKSECRET" + hashlib.sha256(seed.encode()).hexdigest()[:24]


_ENV_ENTRY = re.compile(r"^([A-Z][A-Z0-9_]*)=")


def mock_image_id(reference: str) -> str:
    """The image id the mocks give a pulled image: derived from its reference, so traceable."""
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


def mock_kms_key_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def mock_kms_key_arn(name: str, region: str = "eu-west-1") -> str:
    """The ARN the mocks give the KMS key declared as `name`: derived from it, so traceable."""
    return f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{mock_kms_key_id(name)}"


def _decode(value: Any, *, reveal: bool, key: str = "") -> Any:
    """Inputs as the engine receives them, secrets masked (or unwrapped when `reveal`).

    Walks the wire form rather than using the SDK's decoder, which marks a whole list secret
    when one element is: a plan should show `RAILS_ENV=production` beside `DATABASE_URL=[secret]`.
    A secret container env entry keeps its variable name, which is never secret.
    """
    if isinstance(value, dict):
        signature = value.get(pulumi_sdk.SECRET_SIGNATURE_KEY)
        if signature == pulumi_sdk.SECRET_SIGNATURE:
            inner = value.get("value")
            if reveal:
                return _decode(inner, reveal=True, key=key)
            entry = _ENV_ENTRY.match(inner) if key == "envs" and isinstance(inner, str) else None
            return f"{entry.group(1)}={MASK}" if entry else MASK
        return {k: _decode(v, reveal=reveal, key=k) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, reveal=reveal, key=key) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has only doubles; memory limits and ports read better as ints
    return value


def _name_of(urn: str) -> str | None:
    return urn.rsplit("::", 1)[-1] if urn else None


@dataclass
class DeclaredResource:
    type: str
    name: str
    parent: str | None
    parent_urn: str | None
    inputs: dict[str, Any]
    plain_inputs: dict[str, Any]
    urn: str
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    dependencies: list[str]
    provider: str | None
    # What a real update needs besides the inputs: which inputs carry which resources' outputs,
    # whether delete_before_replace was set at all (unset is not False), and custom timeouts.
    delete_before_replace_defined: bool = False
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    # Inputs whose change replaces the resource whatever its provider says (`replace_on_changes`).
    replace_on_changes: list[str] = field(default_factory=list)
    # What the (mock) provider answered: the inputs and what only it knows (ids, ARNs). Stack
    # policies see these, as they see a real resource's outputs.
    plain_outputs: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs}


@dataclass
class Plan:
    stack: str
    resources: list[DeclaredResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    plain_outputs: dict[str, Any] = field(default_factory=dict)
    # What the program warned about (`pulumi.log.warn`), as `pulumi preview` would print it.
    warnings: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> DeclaredResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r} in the {self.stack} plan")
        return matches[0]

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "resources": [r.as_json() for r in self.resources], "outputs": self.outputs}


class _Mocks(pulumi_mocks.Mocks):
    """Makes up what only a provider would know; everything else is the inputs echoed back."""

    def __init__(
        self, region: str, exit_codes: Mapping[str, int], referenced: Mapping[str, dict[str, Any]] | None = None
    ) -> None:
        self.region = region
        self.exit_codes = exit_codes
        self.referenced = referenced or {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        name, type_ = args.name, args.typ
        resource_id = f"{name}-id"
        if type_ == STACK_REFERENCE:
            # What the referenced stack's own program exports, run under mocks just before.
            stack_name = str(args.inputs["name"])
            if stack_name not in self.referenced:
                raise KeyError(f"{stack_name}: no outputs for this stack reference (see STACK_REFERENCES)")
            return stack_name, {"name": stack_name, "outputs": self.referenced[stack_name], "secretOutputNames": []}
        if type_ == tokens.RANDOM_PASSWORD:
            # New keepers, a new value: as the provider does when a keeper changes.
            keepers = args.inputs.get("keepers") or {}
            initial = keepers in ({}, {"rotation": "initial"})
            state["result"] = fake_secret(name if initial else "/".join([name, *map(str, keepers.values())]))
        elif type_ == tokens.REMOTE_IMAGE:
            state["imageId"] = mock_image_id(str(args.inputs.get("name")))
        elif type_ == tokens.CONTAINER and args.inputs.get("attach"):
            state["exitCode"] = self.exit_codes.get(name, 0)
        elif type_ == tokens.KMS_KEY:
            resource_id = mock_kms_key_id(name)
            state |= {"keyId": resource_id, "arn": mock_kms_key_arn(name, self.region)}
        elif type_ == tokens.SECRET:
            resource_id = f"arn:aws:secretsmanager:{self.region}:{ACCOUNT_ID}:secret:{args.inputs['name']}-AbCdEf"
            state["arn"] = resource_id
        elif type_ == tokens.IAM_ACCESS_KEY:
            resource_id = "AKIA" + hashlib.sha256(name.encode()).hexdigest()[:16].upper()
            state["secret"] = fake_secret(name)
        elif type_ == tokens.BUCKET:
            resource_id = str(args.inputs["bucket"])
            state["arn"] = f"arn:aws:s3:::{resource_id}"
        elif "arn" not in state and type_.startswith("aws:"):
            state["arn"] = f"arn:aws:mock:{self.region}:{ACCOUNT_ID}:{name}"
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/deploy", "userId": "AIDA"}, []
        return {}, []


class _WarningsOf(logging.Handler):
    """Keeps the program's warnings on its plan (the mock engine logs them)."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(logging.WARNING)
        self.plan = plan

    def emit(self, record: logging.LogRecord) -> None:
        self.plan.warnings.append(record.getMessage())


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.declared: list[DeclaredResource] = []

    def _record(self, request: Any, inputs: Any, outputs: Any, urn: str, **options: Any) -> None:
        """One resource as it reached the engine: inputs (secrets masked, and revealed) and what
        the (mock) provider answered."""
        decoded = json_format.MessageToDict(inputs)
        self.declared.append(
            DeclaredResource(
                type=request.type,
                name=request.name,
                parent=_name_of(request.parent),
                parent_urn=request.parent or None,
                inputs=_decode(decoded, reveal=False),
                plain_inputs=_decode(decoded, reveal=True),
                urn=urn,
                dependencies=list(request.dependencies),
                provider=request.provider or None,
                plain_outputs=_decode(json_format.MessageToDict(outputs), reveal=True),
                **options,
            )
        )

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the engine's RPC name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._record(
                request,
                request.object,
                response.object,
                response.urn,
                protect=request.protect,
                retain_on_delete=request.retainOnDelete,
                delete_before_replace=request.deleteBeforeReplace,
                delete_before_replace_defined=request.deleteBeforeReplaceDefined,
                property_dependencies={key: list(deps.urns) for key, deps in request.propertyDependencies.items()},
                replace_on_changes=list(request.replaceOnChanges),
                custom_timeouts={
                    op: value
                    for op in ("create", "update", "delete")
                    if (value := getattr(request.customTimeouts, op, ""))
                },
            )
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (the engine's RPC name)
        """A read resource (a StackReference) is recorded too: stack policies see it, with the
        referenced stack's outputs, as they do in a real preview."""
        response = super().ReadResource(request)
        self._record(
            request,
            request.properties,
            response.properties,
            response.urn,
            protect=False,
            retain_on_delete=False,
            delete_before_replace=False,
        )
        return response


async def _resolve_outputs(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    masked: dict[str, Any] = {}
    plain: dict[str, Any] = {}

    async def resolve(value: Any) -> tuple[Any, Any]:
        output = pulumi.Output.from_input(value)
        resolved = await output.future()
        secret = await output.is_secret()
        if isinstance(resolved, dict):
            pairs = {k: await resolve(v) for k, v in resolved.items()}
            return {k: m for k, (m, _) in pairs.items()}, {k: p for k, (_, p) in pairs.items()}
        if isinstance(resolved, list):
            items = [await resolve(v) for v in resolved]
            return [m for m, _ in items], [p for _, p in items]
        return (MASK if secret else resolved), resolved

    for key, value in outputs.items():
        masked[key], plain[key] = await resolve(value)
    return masked, plain


def _ignore_reported_failures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A failed program leaves outputs that carry its error; the error reaches the caller through
    try_program, so asyncio need not print each of them again when they are collected."""
    if isinstance(context.get("exception"), pulumi.RunError):
        return
    loop.default_exception_handler(context)


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """After a failed run, stop what the program left in flight, so the next run starts clean."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    pulumi_sdk.pending_outputs().clear()


STACK_REFERENCE = "pulumi:pulumi:StackReference"
# The config that names another stack, by key and field: that stack is run first, and its
# outputs are what the StackReference reads (the real engine reads the stack's last update).
STACK_REFERENCES = (("audit-x:stagingSeed", "sourceStack"),)
_REFERENCED_OUTPUTS: dict[str, dict[str, Any]] = {}


def referenced_outputs(raw: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Outputs of every stack `raw` config references, by its fully qualified name; each stack
    is run from its own file once per process."""
    found: dict[str, dict[str, Any]] = {}
    for key, field_name in STACK_REFERENCES:
        try:
            qualified = json.loads(raw.get(key) or "{}").get(field_name)
        except (json.JSONDecodeError, AttributeError):
            continue  # the settings report a malformed value, naming it
        if not isinstance(qualified, str):
            continue
        stack = qualified.rsplit("/", 1)[-1]
        if stack not in _REFERENCED_OUTPUTS:
            _REFERENCED_OUTPUTS[stack] = run_program(stack).plain_outputs
        found[qualified] = _REFERENCED_OUTPUTS[stack]
    return found


def _run_main() -> None:
    runpy.run_path(str(PROGRAM), run_name="__main__")


def run_program(
    stack: str,
    *,
    config: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    exit_codes: Mapping[str, int] | None = None,
    stack_outputs: Mapping[str, dict[str, Any]] | None = None,
) -> Plan:
    """Run the program for `stack` under mocks and return what it declared; raise what it raised.

    `config` replaces the stack file's config; `overrides` are merged over it; `secrets` are
    set as secret config (how `pulumi config set --secret` delivers them); `exit_codes` gives
    one-shot containers an exit code other than 0; `stack_outputs` replaces what a referenced stack
    exports (by its fully qualified name), as if that stack had been updated so.
    """
    plan, error = try_program(
        stack, config=config, overrides=overrides, secrets=secrets, exit_codes=exit_codes, stack_outputs=stack_outputs
    )
    if error is not None:
        raise error
    return plan


def try_program(
    stack: str,
    *,
    config: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    exit_codes: Mapping[str, int] | None = None,
    stack_outputs: Mapping[str, dict[str, Any]] | None = None,
) -> tuple[Plan, BaseException | None]:
    """Like run_program, but a failed run returns what was declared before it failed, and why."""
    raw = dict(config if config is not None else load_stack_config(stack))
    raw.update(overrides or {})
    raw.update(secrets or {})
    referenced = referenced_outputs(raw) | dict(stack_outputs or {})
    keys = set(secrets or {}) | secret_keys(raw)
    return _run_under_mocks(stack, raw, keys, exit_codes or {}, _run_main, referenced=referenced)


TEST_STACK = "component-test"


def run_component(
    build: Callable[[], None],
    *,
    exit_codes: Mapping[str, int] | None = None,
    stack_outputs: Mapping[str, dict[str, Any]] | None = None,
) -> Plan:
    """Run `build` (which declares one component) under mocks, alone, and return what it declared.

    A failure then points at that component, not at the whole stack. `build` gets no stack
    config: a component takes everything it needs as arguments (tests.helpers.component_context).
    `stack_outputs`: what a stack the component references exports, by its fully qualified name
    (no other stack is run for it).
    """
    plan, error = _run_under_mocks(TEST_STACK, {}, set(), exit_codes or {}, build, referenced=stack_outputs)
    if error is not None:
        raise error
    return plan


def _run_under_mocks(
    stack: str,
    raw: dict[str, str],
    secret_keys: set[str],
    exit_codes: Mapping[str, int],
    program: Callable[[], None],
    *,
    referenced: Mapping[str, dict[str, Any]] | None = None,
) -> tuple[Plan, BaseException | None]:
    mocks = _Mocks(raw.get("aws:region", "eu-west-1"), exit_codes, referenced)
    monitor = _RecordingMonitor(mocks)
    plan = Plan(stack=stack)
    logger = logging.Logger(f"audit-x-mock-engine-{stack}")
    logger.addHandler(_WarningsOf(plan))
    error: BaseException | None = None

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_ignore_reported_failures)
    asyncio.set_event_loop(loop)
    try:
        pulumi_sdk.reset_root_resource()
        # Outputs still pending from an earlier run that failed belong to a closed loop.
        pulumi_sdk.pending_outputs().clear()
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor, logger=logger)
        pulumi.runtime.set_all_config(raw, list(secret_keys))

        async def main() -> None:
            await pulumi_sdk.run_in_stack(program)
            root = pulumi_sdk.root_resource()
            exported = getattr(root, "outputs", {}) or {}
            plan.outputs, plan.plain_outputs = await _resolve_outputs(exported)

        loop.run_until_complete(main())
    except Exception as exc:  # noqa: BLE001 handed back to the caller with the partial plan
        error = exc
    finally:
        pulumi_sdk.reset_root_resource()
        _cancel_pending(loop)
        asyncio.set_event_loop(None)
        loop.close()
    plan.resources = monitor.declared
    return plan, error


def iter_strings(value: Any) -> Iterator[str]:
    """Every string inside a nested structure: for looking for leaked values."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from iter_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_strings(v)
