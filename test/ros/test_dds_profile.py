"""The Fast DDS profile the executables pick (ros/runner.py, use_package_dds_profile), and the
check that a node process started as a user starts it binds no UDP socket outside loopback."""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from ament_index_python.packages import get_package_share_directory  # noqa: E402

from object_permanence.ros.runner import use_package_dds_profile  # noqa: E402

pytestmark = pytest.mark.ros

CONFIG = Path(get_package_share_directory("object_permanence")) / "config"
STARTUP_TIMEOUT_S = 30.0  # a Python node process importing numpy/scipy on a busy 2-core machine


@pytest.fixture
def dds_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment of a user starting an executable: Fast DDS, no profile, LOCALHOST."""
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "OBJECT_PERMANENCE_DDS_PROFILE", "RMW_IMPLEMENTATION",
                 "ROS_LOCALHOST_ONLY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return monkeypatch


def test_local_profile_by_default_with_the_range_left_to_it(dds_env) -> None:
    assert use_package_dds_profile() == CONFIG / "fastdds.xml"
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(CONFIG / "fastdds.xml")
    # under LOCALHOST rmw_fastrtps would add a UDP transport on every interface to the profile
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SYSTEM_DEFAULT"


def test_deprecated_localhost_only_is_handled_alike(dds_env) -> None:
    dds_env.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE")
    dds_env.setenv("ROS_LOCALHOST_ONLY", "1")
    assert use_package_dds_profile() == CONFIG / "fastdds.xml"
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SYSTEM_DEFAULT" and os.environ["ROS_LOCALHOST_ONLY"] == "0"


def test_multi_machine_profile_on_request(dds_env) -> None:
    dds_env.setenv("OBJECT_PERMANENCE_DDS_PROFILE", "multi_machine")
    dds_env.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    assert use_package_dds_profile() == CONFIG / "fastdds_multi_machine.xml"
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"


def test_an_unknown_choice_stays_local(dds_env) -> None:
    dds_env.setenv("OBJECT_PERMANENCE_DDS_PROFILE", "everywhere")
    assert use_package_dds_profile() == CONFIG / "fastdds.xml"


def test_a_users_profile_is_kept_and_the_range_too(dds_env, tmp_path: Path) -> None:
    own = tmp_path / "own.xml"
    shutil.copy(CONFIG / "fastdds_multi_machine.xml", own)
    dds_env.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(own))
    assert use_package_dds_profile() == own
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(own)
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    copy = tmp_path / "copy_of_local.xml"  # e.g. env.sh exporting the source tree's config/fastdds.xml
    shutil.copy(CONFIG / "fastdds.xml", copy)
    dds_env.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(copy))
    assert use_package_dds_profile() == copy
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SYSTEM_DEFAULT"


def test_another_rmw_is_left_alone(dds_env) -> None:
    dds_env.setenv("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")
    assert use_package_dds_profile() is None
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


# --- sockets of a node process ------------------------------------------------------------------

def udp_sockets(pid: int) -> list[tuple[str, int]]:
    """(local address, port) of every UDP socket process ``pid`` holds (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table, family in (("/proc/net/udp", socket.AF_INET), ("/proc/net/udp6", socket.AF_INET6)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc prints the address as host-order 32-bit words
            words = struct.unpack(f"<{len(raw) // 4}I", raw)
            found.append((socket.inet_ntop(family, struct.pack(f">{len(words)}I", *words)), int(port, 16)))
    return found


def non_loopback(sockets: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(a, p) for a, p in sockets if not ipaddress.ip_address(a).is_loopback]


def start_and_count(launcher, ros_root, env_updates: dict[str, str | None]) -> list[tuple[str, int]]:
    """Start world_model as a user would (plus ``env_updates``), wait until it has joined the
    graph, and return its UDP sockets."""
    for name, value in env_updates.items():
        if value is None:
            launcher.env.pop(name, None)
        else:
            launcher.env[name] = value
    process = launcher.start("world_model", ["world_model"])

    def joined() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"world_model exited with {process.popen.returncode}:\n{process.output()}")
        return "world_model" in ros_root.probe.get_node_names()

    ros_root.spin_until(joined, "world_model to join the graph", STARTUP_TIMEOUT_S)
    sockets = udp_sockets(process.popen.pid)
    launcher.stop_all()
    launcher.processes.clear()
    return sockets


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_node_process_binds_udp_only_on_loopback(ros_root, launcher) -> None:
    """As started by a user (no profile in the environment, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST),
    a node binds every UDP socket to a loopback address; the multi-machine profile, the
    control, binds on every interface under the same conditions."""
    local = start_and_count(launcher, ros_root, {"FASTDDS_DEFAULT_PROFILES_FILE": None})
    assert local, "no UDP socket found: the check looked at the wrong process"
    assert non_loopback(local) == [], f"UDP sockets outside loopback: {local}"
    multi = str(CONFIG / "fastdds_multi_machine.xml")
    wide = start_and_count(launcher, ros_root, {"FASTDDS_DEFAULT_PROFILES_FILE": multi})
    assert non_loopback(wide), f"the control bound nothing outside loopback: {wide}"
