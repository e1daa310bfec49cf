"""One container on an internal network of the rig, declared with the same SDK calls the program
uses, so the real docker provider's update rules can be watched one input at a time
(tests/engine/test_docker_provider.py). Config: host, image, interval (written as given: the
program writes Go's format, components/lib/durations.py), memory, label."""

import pulumi
import pulumi_docker as docker

config = pulumi.Config()
provider = docker.Provider("rig", host=config.require("host"))
opts = pulumi.ResourceOptions(provider=provider)
network = docker.Network("facts-net", name="audit-x-facts-net", internal=True, opts=opts)
container = docker.Container(
    "facts",
    name="audit-x-facts",
    image=config.require("image"),
    command=["sleep", "infinity"],
    init=True,
    # As the program's container policy (components/lib/containers.py): no swap beyond the limit.
    memory=config.require_int("memory"),
    memory_swap=config.require_int("memory"),
    labels=[docker.ContainerLabelArgs(label="io.audit-x.facts", value=config.require("label"))],
    networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name)],
    healthcheck=docker.ContainerHealthcheckArgs(
        tests=["CMD", "true"],
        interval=config.require("interval"),
        timeout="5s",
        start_period="30s",
        start_interval="1s",
        retries=3,
    ),
    wait=True,
    wait_timeout=60,
    opts=opts,
)
pulumi.export("containerId", container.id)
