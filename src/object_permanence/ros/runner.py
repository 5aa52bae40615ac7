"""The one ``main`` every node executable shares: init, construct, spin, shut down cleanly."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, Executor, SingleThreadedExecutor
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.node import Node

from object_permanence.ros.params import ParameterError


def use_package_dds_profile() -> Path | None:
    """Pick this process's Fast DDS profile before rclpy starts; return the profile file in
    effect (None: another RMW, or no profile). See docs/dds.md.

    * ``FASTDDS_DEFAULT_PROFILES_FILE`` set: that profile (the user's choice) is kept.
    * Otherwise the package's, as ``OBJECT_PERMANENCE_DDS_PROFILE`` says: ``local`` (the
      default, config/fastdds.xml: shared memory with segments large enough for camera images,
      UDP and discovery on 127.0.0.1 only) or ``multi_machine`` (config/fastdds_multi_machine.xml:
      the same segments, UDP on every interface). Another value is logged and ``local`` used, so
      that DDS stays on this machine.
    * When the profile in effect is the package's loopback profile (its default participant
      profile is named ``object_permanence_loopback``) and discovery is limited to LOCALHOST
      (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` or the deprecated ``ROS_LOCALHOST_ONLY=1``),
      this process runs with the range SYSTEM_DEFAULT instead: under LOCALHOST rmw_fastrtps
      appends its own UDPv4 transport, without an interface allow-list (its sockets bind
      0.0.0.0 and every interface's address), and a 512 KiB shared-memory transport to any
      profile, whereas SYSTEM_DEFAULT leaves transports and discovery to the profile, which
      keeps both on 127.0.0.1 (stricter than LOCALHOST, never wider).
    """
    import xml.etree.ElementTree as ElementTree

    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    profiles = {"local": "fastdds.xml", "multi_machine": "fastdds_multi_machine.xml"}
    chosen = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if not chosen:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        name = os.environ.get("OBJECT_PERMANENCE_DDS_PROFILE") or "local"
        if name not in profiles:
            rclpy.logging.get_logger("object_permanence").error(
                f"OBJECT_PERMANENCE_DDS_PROFILE={name!r} is not one of {', '.join(profiles)}; using 'local' "
                "(DDS on this machine only)")
            name = "local"
        try:
            profile = Path(get_package_share_directory("object_permanence")) / "config" / profiles[name]
        except PackageNotFoundError:
            return None
        if not profile.is_file():
            return None
        chosen = os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    localhost = (os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
                 or os.environ.get("ROS_LOCALHOST_ONLY") == "1")
    if localhost:
        try:
            root = ElementTree.parse(chosen).getroot()
        except (OSError, ElementTree.ParseError):
            return Path(chosen)  # Fast DDS itself reports a profile it cannot read
        loopback = any(e.get("profile_name") == "object_permanence_loopback" and e.get("is_default_profile") == "true"
                       for e in root.iter() if e.tag.rpartition("}")[2] == "participant")
        if loopback:
            os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
            if os.environ.get("ROS_LOCALHOST_ONLY") == "1":
                os.environ["ROS_LOCALHOST_ONLY"] = "0"
    return Path(chosen)


class StopRequests:
    """Records SIGINT/SIGTERM while nodes run, instead of raising KeyboardInterrupt.

    rclpy's own signal handler (installed by ``rclpy.init``) shuts the context down from a
    background thread and wakes the executor, which then stops; it also calls the Python-level
    handler that was installed before it. Python's default SIGINT handler raises
    KeyboardInterrupt at whatever bytecode the main thread is on: inside a callback, inside the
    nodes' clean-up, or inside rclpy's ``take`` while pybind11 converts a message, where it
    surfaces as ``RuntimeError: Unable to convert call argument '0' to Python object`` before
    the context is down (the shutdown race of issue 6). This handler only records the signal,
    so nothing is interrupted half-way and a second signal (Ctrl-C under ``ros2 launch``: one
    from the terminal, one forwarded by launch) is as harmless as the first.

    A signal that comes ``escalate_after_s`` or more after the first one, while ``interruptible``
    (the nodes are being built or spun), raises KeyboardInterrupt: a callback that does not
    return (a blocked device read) can still be interrupted by a second Ctrl-C or by launch's
    SIGTERM escalation.

    Installed only from the main thread (Python's rule for signal handlers); ``restore``
    puts the previous handlers back.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, escalate_after_s: float = 2.0) -> None:
        if not escalate_after_s > 0.0:
            raise ValueError(f"StopRequests: escalate_after_s must be > 0 s, got {escalate_after_s!r}")
        self.escalate_after_s = escalate_after_s
        self.received: list[int] = []
        self.interruptible = False
        self._first_s: float | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (a no-op outside the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._record)

    def restore(self) -> None:
        """Put back the handlers that were there before ``install``."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def ignore_from_now(self) -> None:
        """Ignore SIGINT and SIGTERM for the rest of the process (its nodes are gone, it exits).

        Python's finalisation puts the default action back for signals that have a Python
        handler, and the default action of SIGINT/SIGTERM kills the process with a signal status
        (-2/-15), which a late signal would do during the DDS teardown that follows (the second
        SIGINT of a Ctrl-C under launch, arriving a few ms after the first). An ignored signal
        stays ignored through finalisation; a teardown that hangs still yields to SIGKILL.
        """
        if not self._previous:
            return
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return bool(self.received)

    def _record(self, signum: int, _frame: object) -> None:
        # This runs between two bytecodes of the main thread, wherever it is. rclpy's handler has
        # already started the shutdown; a signal before rclpy.init is checked right after it.
        now = time.monotonic()
        self.received.append(signum)
        if self._first_s is None:
            self._first_s = now
        elif self.interruptible and now - self._first_s >= self.escalate_after_s:
            raise KeyboardInterrupt


#: ``OBJECT_PERMANENCE_EXECUTOR``: the executor a process's nodes spin on. ``events``: rclpy's
#: EventsExecutor (a C++ event queue: about half the composed pipeline's latency, README "Executor");
#: ``single_threaded``: rclpy's SingleThreadedExecutor (rebuilds a wait set in Python for every callback).
EXECUTORS = ("events", "single_threaded")
EXECUTOR_ENV = "OBJECT_PERMANENCE_EXECUTOR"


def make_executor(logger: RcutilsLogger) -> Executor:
    """The executor ``OBJECT_PERMANENCE_EXECUTOR`` names (``events`` when unset); another value is
    logged and ``events`` used; an rclpy without the EventsExecutor (before Kilted) gets the
    single-threaded one, with a warning. Call after ``rclpy.init``."""
    name = os.environ.get(EXECUTOR_ENV, "events")
    if name not in EXECUTORS:
        logger.error(f"{EXECUTOR_ENV}={name!r} is not one of {', '.join(EXECUTORS)}: using events")
        name = "events"
    if name == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            logger.warning("this rclpy has no EventsExecutor (rclpy.experimental, ROS 2 Kilted and later): "
                           "spinning on the SingleThreadedExecutor")
        else:
            return EventsExecutor()
    return SingleThreadedExecutor()


def _spin(executor: Executor) -> None:
    """Spin until the context shuts down. The EventsExecutor is spun a step at a time: its
    ``spin()`` did not return when the context was shut down from another thread."""
    if isinstance(executor, SingleThreadedExecutor):
        executor.spin()
        return
    while rclpy.ok():
        executor.spin_once(timeout_sec=0.1)


def spin_nodes(factories: Sequence[Callable[[], Node]], args: list[str] | None = None,
               executor: Executor | None = None, restore_signal_handlers: bool = False) -> int:
    """Create the nodes on one executor and spin until shutdown (SIGINT, SIGTERM) or until a node
    asks to stop by calling ``rclpy.shutdown()``. Returns the process exit code: 0 on a clean
    stop, 2 when a node rejected its parameters (the log says which and why).

    A stop never exits non-zero and never prints a traceback: signals are recorded
    (``StopRequests``) rather than raised, and what rclpy raises while the context goes down
    (ExternalShutdownException; RuntimeError, RCLError and InvalidHandle from a take, wait or
    destroy racing the shutdown) is a clean stop. The same exceptions without a shutdown in
    progress are bugs and propagate.

    An executable ignores SIGINT and SIGTERM once its nodes are destroyed
    (``restore_signal_handlers`` False; ``StopRequests.ignore_from_now`` says why): the
    process is about to exit, and a late signal (the second SIGINT of a Ctrl-C under launch)
    must not kill it during the interpreter's and DDS's teardown. A caller that goes on running
    (a test spinning nodes in-process) passes True to get its previous handlers back.
    """
    use_package_dds_profile()
    stops = StopRequests()
    stops.install()
    nodes: list[Node] = []
    code = 0
    logger = rclpy.logging.get_logger("object_permanence")
    try:
        rclpy.init(args=args)
        if stops.requested:  # a signal during rclpy.init: do not start at all
            return 0
        stops.interruptible = True
        for make in factories:
            nodes.append(make())
        executor = executor or make_executor(logger)
        for node in nodes:
            executor.add_node(node)
        _spin(executor)
    except ParameterError as exc:
        logger.fatal(f"bad parameter: {exc}")
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - sorted below: shutdown race or a real failure
        if not _shutting_down(stops):
            raise
        _log_shutdown_exception(logger, exc)
    finally:
        stops.interruptible = False
        for node in nodes:
            _release(_closer(node), stops, logger)
        if executor is not None:
            # Now, not whenever the garbage collector gets to it: Executor.__del__ destroys its
            # signal guard condition and, run late in the interpreter's teardown, fails with a
            # printed InvalidHandle traceback.
            _release(executor.shutdown, stops, logger)
        rclpy.try_shutdown()
        if restore_signal_handlers:
            stops.restore()
        else:
            stops.ignore_from_now()
    return code


def _shutting_down(stops: StopRequests) -> bool:
    """A stop signal arrived or the context is (being) shut down."""
    return stops.requested or not rclpy.ok()


def _log_shutdown_exception(logger: RcutilsLogger, exc: BaseException) -> None:
    """rclpy's errors of a call racing the shutdown are expected (debug); anything else raised
    while stopping is a bug of a node, reported with its traceback but not turned into a
    non-zero exit of an otherwise requested stop."""
    if isinstance(exc, RuntimeError):  # RCLError, InvalidHandle, pybind11's conversion error
        logger.debug(f"ignored while shutting down: {type(exc).__name__}: {exc}")
    else:
        logger.error("raised while shutting down:\n" + "".join(traceback.format_exception(exc)))


def _closer(node: Node) -> Callable[[], object]:
    """Release a node's resources (its ``close()``, if any), then destroy it."""
    def close() -> None:
        release = getattr(node, "close", None)
        if release is not None:
            release()
        node.destroy_node()
    return close


def _release(action: Callable[[], object], stops: StopRequests, logger: RcutilsLogger) -> None:
    """Run one clean-up step; an error while shutting down is logged and the clean-up goes on."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - clean-up goes on for every node
        if not _shutting_down(stops):
            raise
        _log_shutdown_exception(logger, exc)


def main_for(node_cls: type[Node]) -> Callable[[list[str] | None], int]:
    """A ``main(args=None)`` for a single-node executable."""
    def main(args: list[str] | None = None) -> int:
        return spin_nodes([node_cls], args if args is not None else sys.argv)
    main.__doc__ = f"Run the {node_cls.__name__} node until shutdown."
    return main
