"""The rig's Docker engine itself: a version that honours what the program declares, health checks
with a start interval, internal networks, ports published on loopback only, and a clean stop."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from harness.docker_rig import catalogue
from harness.docker_rig.containers import container, network
from harness.docker_rig.engine import Rig, engine, server_version, version_tuple
from harness.docker_rig.images import RigImages, load

# Answers every connection with one HTTP response naming the container: perl-base is in every Debian
# image (it is Essential), so the bare base serves without anything installed.
HTTP_SERVER = (
    "perl",
    "-MIO::Socket::INET",
    "-e",
    '$s = IO::Socket::INET->new(LocalPort => 8000, Listen => 5, ReuseAddr => 1) or die "listen: $!";'
    ' while ($c = $s->accept) { <$c>; print $c "HTTP/1.0 200 OK\\r\\n\\r\\nserved by $ENV{HOSTNAME}\\n"; close $c }',
)
# Prints whether a TCP connection to ARGV[0]:ARGV[1] opened, or the error.
CONNECT = (
    "perl",
    "-MIO::Socket::INET",
    "-e",
    "my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Timeout => 3);"
    ' print $s ? "connected\\n" : "failed: $@\\n"',
)


def test_the_engine_is_docker_25_or_newer_so_start_interval_is_honoured(docker_rig: Rig) -> None:
    engine_version, api_version = server_version(docker_rig)
    # Docker Engine 25 (API 1.44) added the health check's start_interval, which the program sets.
    assert version_tuple(engine_version) >= (25,), engine_version
    assert version_tuple(api_version) >= (1, 44), api_version
    assert engine_version.startswith("26.1."), "trixie's docker.io, as built: a new version is worth a look"


def test_a_health_check_probes_at_its_start_interval_during_the_start_period(
    docker_rig: Rig, rig_images: RigImages
) -> None:
    # Healthy from the third second on; probed every 60 s, but every 1 s during the start period:
    # an engine that ignores start_interval reports healthy only after a minute.
    health = ["--health-cmd=test -f /tmp/up", "--health-interval=60s", "--health-start-period=50s"]
    with container(
        docker_rig,
        rig_images[catalogue.BASE],
        *("sh", "-c", "sleep 2; touch /tmp/up; exec sleep 600"),
        options=[*health, "--health-start-interval=1s"],
    ) as box:
        assert box.health() == "starting"
        seconds = box.wait_for("healthy", timeout=30)
    assert 2 <= seconds < 15


def test_an_internal_network_reaches_its_members_and_nothing_else(docker_rig: Rig, rig_images: RigImages) -> None:
    base = rig_images[catalogue.BASE]
    with (
        network(docker_rig, internal=True) as inside,
        network(docker_rig) as outside,
        container(docker_rig, base, *HTTP_SERVER, network=inside) as member,
        container(docker_rig, base, *HTTP_SERVER, network=outside) as other,
        container(docker_rig, base, "sleep", "600", network=inside) as client,
    ):
        time.sleep(1)
        assert client.exec(*CONNECT, member.ip(inside), "8000") == (0, "connected\n")
        # The other network is one of the rig's own: a route out of the internal one would reach it.
        code, out = client.exec(*CONNECT, other.ip(outside), "8000")
        assert code == 0 and out.startswith("failed: ") and "unreachable" in out.lower(), out
        routes = client.exec("cat", "/proc/net/route")[1].splitlines()[1:]
        assert routes and all(line.split()[1] != "00000000" for line in routes), routes  # no default route


def listeners(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (/proc/net/tcp and tcp6, hex)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_a_port_published_on_loopback_answers_there_only(docker_rig: Rig, rig_images: RigImages) -> None:
    with (
        network(docker_rig) as net,
        container(
            docker_rig, rig_images[catalogue.BASE], *HTTP_SERVER, network=net, options=["-p", "127.0.0.1::8000"]
        ) as server,
    ):
        address, port = server.published(8000)
        assert address == "127.0.0.1"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        hostname = docker_rig.docker("inspect", "--format", "{{.Config.Hostname}}", server.name).stdout.strip()
        assert body == f"served by {hostname}\n"
        assert listeners(port) == {"0100007F"}  # 127.0.0.1 alone, no wildcard, no IPv6


def test_a_container_joins_no_network_unless_given_one_of_the_rigs(docker_rig: Rig) -> None:
    # No default bridge: what runs on the rig is on the networks the tests create, or on none.
    names = set(docker_rig.docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    assert "bridge" not in names
    assert {"host", "none"} <= names


def test_the_rig_stops_by_its_pid_and_leaves_nothing_running_or_mounted(rig_images: RigImages) -> None:
    # A rig of this test's own (the session's runs on): stopped with a container running in it.
    rig_images[catalogue.BASE]  # built or cached before, so this rig only loads it
    with engine() as rig:
        pid, state = rig.pid, rig.state
        load(rig, catalogue.BASE)
        rig.docker("network", "create", "stop-test")
        rig.docker("run", "--detach", "--name", "stop-test", "--network=stop-test", catalogue.BASE.tag, "sleep", "600")
        box_pid = int(rig.docker("inspect", "--format", "{{.State.Pid}}", "stop-test").stdout)
        assert rig.mounts() == []  # its mounts are in its own namespace from the start
        assert box_pid in rig.leftovers()
        assert len(rig.bridges()) == 1
    assert not Path(f"/proc/{pid}").exists()
    assert not Path(f"/proc/{box_pid}").exists()
    assert rig.leftovers() == []
    assert rig.bridges() == []  # its network's bridge is gone from the machine
    assert [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(state) in line] == []
    assert not state.exists()
    assert not rig.socket.exists()
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(1)
        assert client.connect_ex(str(rig.socket)) != 0
