"""Redpanda built alone: one broker on the data network, sized from its settings, and the job that
switches consumer-group lag metrics on at the interval it is given."""

from __future__ import annotations

from components.data.redpanda import Redpanda
from components.lib import tokens
from components.settings import RedpandaSettings
from harness.mock_engine import Plan, mock_image_id, run_component
from tests.helpers import (
    children,
    clashes,
    component_context,
    data_network,
    declared,
    env,
    healthcheck_command,
    labels,
    network_names,
    upload,
    volumes,
)

SETTINGS = RedpandaSettings(
    image="docker.redpanda.com/redpandadata/redpanda:v25.1.9", cores=2, memory_mb=1536, memory_limit_mb=2048
)
BOOTSTRAP_FILE = "/etc/redpanda/.bootstrap.yaml"


def bootstrap(interval: int) -> str:
    return (
        'enable_consumer_group_metrics: ["group", "partition", "consumer_lag"]\n'
        f"consumer_group_lag_collection_interval_sec: {interval}\n"
    )


def build(*brokers: tuple[str, str, int]) -> Plan:
    """Each broker as (environment, name, lag interval in seconds), on its environment's data network."""

    def declare() -> None:
        contexts = {environment: component_context(environment) for environment, _, _ in brokers}
        network = {environment: data_network(ctx) for environment, ctx in contexts.items()}
        for environment, name, interval in brokers:
            Redpanda(
                name,
                SETTINGS,
                ctx=contexts[environment],
                lag_interval_seconds=interval,
                data_network=network[environment],
            )

    return run_component(declare)


def test_redpanda_alone_declares_a_broker_sized_from_its_settings_on_the_data_network() -> None:
    plan = build(("test", "audit-x-test-redpanda", 15))
    assert children(plan, "audit-x-test-redpanda") == [
        (tokens.CONTAINER, "audit-x-test-redpanda"),
        (tokens.CONTAINER, "audit-x-test-redpanda-lag-metrics"),
        (tokens.REMOTE_IMAGE, "audit-x-test-redpanda-image"),
        (tokens.VOLUME, "audit-x-test-redpanda-data"),
    ]
    broker = declared(plan, tokens.CONTAINER, "audit-x-test-redpanda")
    assert broker.inputs["image"] == mock_image_id("docker.redpanda.com/redpandadata/redpanda:v25.1.9")
    assert broker.inputs["networksAdvanced"] == [{"name": "audit-x-test-data", "aliases": ["redpanda"]}]
    assert broker.inputs.get("ports") is None
    command = broker.inputs["command"]
    assert command[:3] == ["redpanda", "start", "--overprovisioned"]
    assert {"--smp=2", "--memory=1536M", "--advertise-kafka-addr=internal://redpanda:9092"} <= set(command)
    assert (broker.inputs["memory"], broker.inputs["memorySwap"]) == (2048, 2048)
    assert volumes(broker) == {"/var/lib/redpanda/data": "audit-x-test-redpanda-data"}
    assert (broker.inputs["stopTimeout"], broker.inputs["destroyGraceSeconds"]) == (60, 60)
    assert upload(broker, BOOTSTRAP_FILE) == {"file": BOOTSTRAP_FILE, "content": bootstrap(15), "permissions": "0444"}
    assert healthcheck_command(broker) == "rpk cluster health | grep -Eq '^Healthy:[[:space:]]+true'"
    assert (labels(broker)["io.audit-x.service"], labels(broker)["io.audit-x.role"]) == ("redpanda", "broker")


def test_the_lag_metrics_job_sets_the_same_properties_once_the_broker_is_up() -> None:
    plan = build(("test", "audit-x-test-redpanda", 15))
    broker = declared(plan, tokens.CONTAINER, "audit-x-test-redpanda")
    job = declared(plan, tokens.CONTAINER, "audit-x-test-redpanda-lag-metrics")
    assert broker.urn in job.dependencies
    assert (job.inputs["attach"], job.inputs["restart"]) == (True, "no")
    assert env(job) == {"PROPERTIES_FILE": BOOTSTRAP_FILE, "ADMIN_HOSTS": "redpanda:9644"}
    assert upload(job, BOOTSTRAP_FILE)["content"] == bootstrap(15)
    assert network_names(job) == ["audit-x-test-data"]
    assert labels(job)["io.audit-x.role"] == "lag-metrics"


def test_two_environments_brokers_side_by_side_keep_their_own_data_network_and_lag_interval() -> None:
    plan = build(("test", "audit-x-test-redpanda", 15), ("qa", "audit-x-qa-redpanda", 30))
    assert clashes(plan) == []
    for environment, name, interval in (("test", "audit-x-test-redpanda", 15), ("qa", "audit-x-qa-redpanda", 30)):
        broker = declared(plan, tokens.CONTAINER, name)
        assert network_names(broker) == [f"audit-x-{environment}-data"]
        assert volumes(broker) == {"/var/lib/redpanda/data": f"{name}-data"}
        assert upload(broker, BOOTSTRAP_FILE)["content"] == bootstrap(interval)
        assert upload(declared(plan, tokens.CONTAINER, f"{name}-lag-metrics"), BOOTSTRAP_FILE)["content"] == (
            bootstrap(interval)
        )


def test_a_second_broker_on_the_same_network_would_answer_to_the_same_name() -> None:
    # Clients find the broker by its alias (KAFKA_BROKERS is redpanda:9092 everywhere): one a network.
    plan = build(("test", "audit-x-test-redpanda", 15), ("test", "audit-x-test-events", 15))
    assert clashes(plan) == ["alias redpanda on audit-x-test-data"]
