"""The networks built alone: an internal one for the data services, an outbound one for the app,
each named and labelled for its environment."""

from __future__ import annotations

from components.lib import tokens
from harness.mock_engine import Plan, run_component
from tests.helpers import children, clashes, component_context, labels, networks


def build(*environments: str) -> Plan:
    def declare() -> None:
        for environment in environments:
            networks(component_context(environment))

    return run_component(declare)


def test_networks_alone_declare_an_internal_data_network_and_an_outbound_app_network() -> None:
    plan = build("test")
    assert children(plan, "audit-x-test-networks") == [
        (tokens.NETWORK, "audit-x-test-app"),
        (tokens.NETWORK, "audit-x-test-data"),
    ]
    found = {r.name: r for r in plan.of_type(tokens.NETWORK)}
    data, app = found["audit-x-test-data"], found["audit-x-test-app"]
    assert {k: data.inputs[k] for k in ("name", "driver", "internal")} == {
        "name": "audit-x-test-data",
        "driver": "bridge",
        "internal": True,
    }
    assert {k: app.inputs[k] for k in ("name", "driver", "internal")} == {
        "name": "audit-x-test-app",
        "driver": "bridge",
        "internal": False,
    }
    for network, purpose in ((data, "data"), (app, "app")):
        assert labels(network) == {
            "io.audit-x.project": "audit-x",
            "io.audit-x.environment": "test",
            "io.audit-x.service": "network",
            "io.audit-x.role": purpose,
            "io.audit-x.managed-by": "pulumi",
        }


def test_two_environments_networks_side_by_side_do_not_clash() -> None:
    plan = build("test", "qa")
    assert clashes(plan) == []
    assert sorted(r.inputs["name"] for r in plan.of_type(tokens.NETWORK)) == [
        "audit-x-qa-app",
        "audit-x-qa-data",
        "audit-x-test-app",
        "audit-x-test-data",
    ]
    assert {labels(r)["io.audit-x.environment"] for r in plan.of_type(tokens.NETWORK) if "-qa-" in r.name} == {"qa"}
