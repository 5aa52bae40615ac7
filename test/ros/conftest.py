"""Shared set-up of the ROS tests: an isolated DDS domain on loopback, a clean rclpy context per
module, a per-test harness (probe node, executor, /rosout capture) and node processes that are
always stopped.

The environment is set here, at import time, before any test module imports rclpy: DDS stays
on loopback (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in a random ``ROS_DOMAIN_ID`` of this
test session, and child processes inherit both. rclpy is imported lazily so that the test
modules can skip cleanly (``pytest.importorskip``) where it is missing.
"""
from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(100, 230))

#: Seconds allowed for the first message after something starts (discovery takes 1-4 s).
FIRST_MESSAGE_TIMEOUT_S = 15.0
#: Seconds a node process gets to exit after SIGINT before it is killed.
STOP_TIMEOUT_S = 10.0

_namespaces = itertools.count(1)


def child_env() -> dict[str, str]:
    """Environment of node processes: this session's domain and loopback-only discovery, no Fast
    DDS profile (the nodes' own default applies), unbuffered output, and no OpenAI key (the
    explainer stays offline)."""
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    env.update(PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    # As a user starting the executables by hand: no profile in the environment; the nodes pick
    # the package's (ros/runner.py, use_package_dds_profile).
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    # use_package_dds_profile may have widened this process's range to the loopback-only profile's
    # SYSTEM_DEFAULT; a child always starts from LOCALHOST and picks its own profile.
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


class RosHarness:
    """One test's slice of the graph: a probe node for publishers and subscriptions, the nodes
    under test, one executor spinning all of them, and every /rosout record.

    Every node it creates lives in ``namespace``, so tests of one session never see each
    other's topics (relative topic names resolve inside the namespace).
    """

    def __init__(self, context: Any, namespace: str) -> None:
        from rcl_interfaces.msg import Log
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        self.context = context
        self.namespace = namespace
        self.executor = SingleThreadedExecutor(context=context)
        self._nodes: list[Any] = []
        self._publishers: list[Any] = []
        self._subscriptions: list[Any] = []
        self.probe = self._add(Node("probe", namespace=namespace, context=context))
        self.logs: list[Log] = []
        rosout_qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.probe.create_subscription(Log, "/rosout", self.logs.append, rosout_qos)

    def _add(self, node: Any) -> Any:
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def start(self, node_cls: type, params: dict[str, Any] | None = None) -> Any:
        """Construct ``node_cls`` in this namespace with parameter overrides and spin it."""
        from rclpy.parameter import Parameter

        overrides = [Parameter(name, value=value) for name, value in (params or {}).items()]
        return self._add(node_cls(context=self.context, namespace=self.namespace, parameter_overrides=overrides))

    def publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        publisher = self.probe.create_publisher(msg_type, topic, qos)
        self._publishers.append(publisher)
        return publisher

    def collect(self, msg_type: type, topic: str, qos: Any) -> list:
        """A list that receives every message of ``topic`` as the executor spins."""
        received: list = []
        self._subscriptions.append(self.probe.create_subscription(msg_type, topic, received.append, qos))
        return received

    def wait_connected(self) -> None:
        """Spin until every probe publisher has a matched subscriber and every probe
        subscription a matched publisher (so that no volatile message is lost to discovery)."""
        self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in self._publishers)
                        and all(s.get_publisher_count() > 0 for s in self._subscriptions),
                        "the nodes under test to match the probe's topics")

    def poll(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Spin in 50 ms slices until ``condition()`` holds (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def spin_until(self, condition: Callable[[], bool], what: str,
                   timeout_s: float = FIRST_MESSAGE_TIMEOUT_S) -> None:
        """Spin until ``condition()`` holds; AssertionError naming ``what`` at the deadline."""
        if not self.poll(condition, timeout_s):
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    def retry_until(self, send: Callable[[int], None], condition: Callable[[], bool], what: str,
                    attempt_s: float = 1.0, timeout_s: float = FIRST_MESSAGE_TIMEOUT_S) -> int:
        """Call ``send(attempt)`` and spin up to ``attempt_s`` for ``condition()``, again until the
        deadline: for inputs that may be dropped (best-effort topics, a latest-value input that
        may be taken after the message that needs it). Returns the successful attempt."""
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            send(attempt)
            if self.poll(condition, min(attempt_s, max(0.0, deadline - time.monotonic()))):
                return attempt
            attempt += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s ({attempt} attempts) waiting for {what}")

    def log_lines(self, node_name: str, min_level: int = 0) -> list[str]:
        """Texts of the /rosout records of ``node_name`` (in this namespace) at ``min_level`` or above."""
        logger = f"{self.namespace.strip('/').replace('/', '.')}.{node_name}".lstrip(".")
        return [m.msg for m in self.logs if m.name == logger and m.level >= min_level]

    def close(self) -> None:
        """Close and destroy every node (the nodes under test first), then the executor."""
        for node in reversed(self._nodes):
            try:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
            finally:
                self.executor.remove_node(node)
                node.destroy_node()
        self.executor.shutdown()


@pytest.fixture(scope="module")
def ros_context() -> Iterator[Any]:
    """A fresh rclpy context for one test module, shut down after it."""
    import rclpy
    from rclpy.context import Context

    from object_permanence.ros.runner import use_package_dds_profile

    use_package_dds_profile()  # this test process on loopback only, as the nodes it starts
    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)


@pytest.fixture
def ros(ros_context: Any) -> Iterator[RosHarness]:
    """A harness in a namespace of its own (``/t<n>``)."""
    harness = RosHarness(ros_context, f"/t{next(_namespaces)}")
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def ros_root(ros_context: Any) -> Iterator[RosHarness]:
    """A harness in the root namespace, where node processes publish."""
    harness = RosHarness(ros_context, "/")
    try:
        yield harness
    finally:
        harness.close()


class NodeProcess:
    """A node executable running in a process group of its own, output to a file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout_s: float) -> int:
        """Exit code, waiting at most ``timeout_s`` (subprocess.TimeoutExpired beyond)."""
        return self.popen.wait(timeout=timeout_s)

    def stop(self) -> int:
        """SIGINT to the process group, wait; SIGKILL the group if it does not exit. Returns the exit code."""
        if self.popen.poll() is None:
            self._signal(signal.SIGINT)
            try:
                return self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        return self.popen.wait()

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass


class ProcessLauncher:
    """Starts node executables of the installed package as a launch file would."""

    def __init__(self, log_dir: Path) -> None:
        from ament_index_python.packages import get_package_prefix, get_package_share_directory

        self.lib_dir = Path(get_package_prefix("object_permanence")) / "lib" / "object_permanence"
        self.config_dir = Path(get_package_share_directory("object_permanence")) / "config"
        self.log_dir = log_dir
        self.env = child_env()
        self.processes: list[NodeProcess] = []

    def start(self, executable: str, params_files: list[str], overrides: dict[str, Any] | None = None) -> NodeProcess:
        """Run ``executable`` with ``--params-file config/<f>.yaml`` for each of ``params_files``
        and ``-p name:=value`` for each override."""
        argv = [str(self.lib_dir / executable), "--ros-args"]
        for name in params_files:
            argv += ["--params-file", str(self.config_dir / f"{name}.yaml")]
        for name, value in (overrides or {}).items():
            argv += ["-p", f"{name}:={value}"]
        process = NodeProcess(executable, argv, self.log_dir / f"{executable}-{len(self.processes)}.log", self.env)
        self.processes.append(process)
        return process

    def stop_all(self) -> dict[str, tuple[int, str]]:
        """Stop every process (newest first, so the sources stop before their consumers);
        exit code and output by process log name."""
        results = {}
        for process in reversed(self.processes):
            code = process.stop()
            results[process.log_path.stem] = (code, process.output())
        return results


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[ProcessLauncher]:
    """Node processes that are stopped (SIGINT, then SIGKILL) however the test ends."""
    launcher = ProcessLauncher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()
