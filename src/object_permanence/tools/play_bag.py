"""Play a rosbag2 recording (MCAP or sqlite3) into the ROS graph with the pure-Python ``rosbags``
reader, starting only once the graph is ready.

For machines without ``ros2 bag`` (a PyPI install of the package), and for replays that must not
lose their first seconds: with ``--wait-for`` the first message goes out only once every listed
topic has a matched subscription (plus ``--delay`` seconds), so nodes that are still starting
up miss nothing. ``--wait-only`` waits the same way and exits without playing: ``replay.launch.py``
uses it to gate ``ros2 bag play``.

    python -m object_permanence.tools.play_bag out/sim_bag --clock \\
        --wait-for /stereo/left/image_raw,/stereo/right/image_raw
    ros2 run object_permanence play_bag robot.mcap --clock --rate 0.5

Messages are published as recorded (the serialized CDR bytes, never decoded), at the recorded
pace scaled by ``--rate``. ``--clock`` publishes each message's recording time on ``/clock``
before the message, for nodes with ``use_sim_time``. Every message type in the bag must be
importable (its ROS package installed). Exit codes: 0 played (or stopped by SIGINT/SIGTERM),
1 the wait timed out, 2 bad arguments or an unreadable bag.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

#: Seconds between two checks of the stop flag while waiting (a SIGINT is handled within this).
POLL_S = 0.05
#: Seconds granted at the end for reliable subscribers to acknowledge the last messages.
ACK_TIMEOUT_S = 5.0
#: Publisher history: how far a slow reliable subscriber may lag before old messages are dropped.
PUBLISHER_DEPTH = 10


@dataclass(frozen=True)
class PlayOptions:
    """What to play and how.

    bag: rosbag2 folder, ``.mcap`` or ``.db3`` file. rate: playback speed (1.0: recorded pace).
    clock: publish ``/clock``. wait_for: topics that need a matched subscription first.
    wait_timeout_s: give up waiting after this long. delay_s: extra seconds after the wait.
    topics: play only these (empty: every topic of the bag). wait_only: wait, then exit.
    remap: ``(bag topic, published topic)`` pairs: a robot's recording under its own names played
    on the names the nodes subscribe to (``wait_for`` names the published topics).
    """

    bag: Path
    rate: float = 1.0
    clock: bool = False
    wait_for: tuple[str, ...] = ()
    wait_timeout_s: float = 60.0
    delay_s: float = 0.0
    topics: tuple[str, ...] = ()
    wait_only: bool = False
    remap: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.rate > 0.0:
            raise ValueError(f"PlayOptions: rate must be > 0, got {self.rate!r}")
        if not self.wait_timeout_s > 0.0:
            raise ValueError(f"PlayOptions: wait_timeout_s must be > 0 s, got {self.wait_timeout_s!r}")
        if not self.delay_s >= 0.0:
            raise ValueError(f"PlayOptions: delay_s must be >= 0 s, got {self.delay_s!r}")
        if self.wait_only and not self.wait_for:
            raise ValueError("PlayOptions: wait_only needs wait_for topics")
        for name in (*self.wait_for, *self.topics, *(n for pair in self.remap for n in pair)):
            if not name.startswith("/") or name == "/":
                raise ValueError(f"PlayOptions: topic names must be absolute, got {name!r}")
        published = [new for _, new in self.remap]
        if len(set(published)) != len(published) or len({old for old, _ in self.remap}) != len(self.remap):
            raise ValueError(f"PlayOptions: a topic is remapped twice or two topics onto one: {self.remap}")


def topic_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of topics (empty items ignored, leading '/' added)."""
    return tuple(dict.fromkeys("/" + t.strip().lstrip("/") for t in text.split(",") if t.strip()))


def remap_list(text: str) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``FROM=TO`` pairs of topics (empty items ignored, leading '/' added; not
    ``FROM:=TO``, which rclpy takes for a ROS remapping rule of the player node itself)."""
    pairs = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if "=" not in item or ":=" in item:
            raise argparse.ArgumentTypeError(f"remap {item!r} is not FROM=TO")
        old, new = (t.strip() for t in item.split("=", 1))
        if not old or not new:
            raise argparse.ArgumentTypeError(f"remap {item!r} needs both topics")
        pairs.append(tuple("/" + t.lstrip("/") for t in (old, new)))
    return tuple(pairs)


def message_class(msgtype: str) -> type:
    """The Python class of a ROS message type name (``sensor_msgs/msg/Image``); ValueError when
    its package is not installed."""
    package, _, name = msgtype.rpartition("/")
    try:
        return getattr(importlib.import_module(package.replace("/", ".")), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type {msgtype} is not importable (is its package installed?): {exc}") from exc


def publisher_qos(offered: Iterable[Any]) -> Any:
    """Reliable (it matches reliable and best-effort subscriptions), keep-last; transient-local
    when every recorded publisher offered it (latched topics such as /tf_static)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    durabilities = {getattr(q.durability, "name", str(q.durability)) for q in offered}
    durability = (DurabilityPolicy.TRANSIENT_LOCAL if durabilities == {"TRANSIENT_LOCAL"}
                  else DurabilityPolicy.VOLATILE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=PUBLISHER_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE, durability=durability)


def sleep_until(deadline: float, stopped: Callable[[], bool]) -> bool:
    """Sleep until ``time.monotonic()`` reaches ``deadline``; False when ``stopped()`` first."""
    while not stopped():
        remaining = deadline - time.monotonic()
        if remaining <= 0.0:
            return True
        time.sleep(min(remaining, POLL_S))
    return False


class BagPlayer:
    """One publisher per topic of the bag on ``node``, and the playback loop.

    ``stopped()`` is polled between messages and while waiting: playback ends early, cleanly,
    when it returns True.
    """

    def __init__(self, node: Any, connections: list[Any], clock: bool, stopped: Callable[[], bool],
                 remap: dict[str, str] | None = None) -> None:
        from rosgraph_msgs.msg import Clock

        types: dict[str, str] = {}
        offered: dict[str, list[Any]] = {}
        for connection in connections:
            if types.setdefault(connection.topic, connection.msgtype) != connection.msgtype:
                raise ValueError(f"topic {connection.topic} holds two types: {types[connection.topic]} "
                                 f"and {connection.msgtype}")
            offered.setdefault(connection.topic, []).extend(
                getattr(connection.ext, "offered_qos_profiles", None) or [])
        self.node = node
        self.stopped = stopped
        remap = remap or {}
        published = [remap.get(topic, topic) for topic in types]
        clashes = sorted({name for name in published if published.count(name) > 1})
        if clashes:
            raise ValueError(f"--remap plays two bag topics on {', '.join(clashes)} (a topic the bag has too?)")
        # keyed by the published name; _route: bag topic -> its publisher
        self.publishers = {remap.get(topic, topic): node.create_publisher(
            message_class(msgtype), remap.get(topic, topic), publisher_qos(offered[topic]))
            for topic, msgtype in types.items()}
        self._route = {topic: self.publishers[remap.get(topic, topic)] for topic in types}
        self._clock_type = Clock
        self.clock = node.create_publisher(Clock, "/clock", 10) if clock else None

    def wait_for_subscribers(self, topics: tuple[str, ...], timeout_s: float) -> list[str]:
        """Wait until each of ``topics`` has a matched subscription; the topics still without one
        (all of them when stopped, none on success)."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [t for t in topics if self.publishers[t].get_subscription_count() == 0]
            if not missing or self.stopped() or time.monotonic() >= deadline:
                return list(topics) if self.stopped() else missing
            time.sleep(POLL_S)

    def play(self, messages: Iterable[tuple[Any, int, bytes]], rate: float) -> int:
        """Publish ``(connection, recorded time ns, CDR bytes)`` at the recorded pace / ``rate``;
        the number published."""
        count = 0
        first_ns: int | None = None
        last_clock_ns: int | None = None
        start = time.monotonic()
        for connection, stamp_ns, raw in messages:
            if first_ns is None:
                first_ns = stamp_ns
            # due = start + (t - t0) / rate, in seconds of the monotonic clock
            if not sleep_until(start + (stamp_ns - first_ns) * 1e-9 / rate, self.stopped):
                break
            if self.clock is not None and stamp_ns != last_clock_ns:
                msg = self._clock_type()
                msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 10**9)
                self.clock.publish(msg)
                last_clock_ns = stamp_ns
            self._route[connection.topic].publish(bytes(raw))
            count += 1
        return count

    def wait_for_acks(self, timeout_s: float) -> bool:
        """Give reliable subscribers up to ``timeout_s`` to acknowledge what was published."""
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        acked = True
        for publisher in self.publishers.values():
            remaining = max(0.0, deadline - time.monotonic())
            acked &= publisher.wait_for_all_acked(Duration(nanoseconds=int(remaining * 1e9)))
        return acked


def parse_args(argv: list[str]) -> PlayOptions:
    parser = argparse.ArgumentParser(prog="play_bag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path, help="rosbag2 folder, .mcap or .db3 file")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed (default 1.0: recorded pace)")
    parser.add_argument("--clock", action="store_true", help="publish /clock (for use_sim_time)")
    parser.add_argument("--wait-for", type=topic_list, default=(), metavar="TOPICS",
                        help="comma-separated topics that need a matched subscription before playback")
    parser.add_argument("--wait-timeout", type=float, default=60.0, metavar="S",
                        help="seconds to wait for them before giving up with exit code 1 (default 60)")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S",
                        help="seconds between the end of the wait and the first message (default 0)")
    parser.add_argument("--topics", type=topic_list, default=(), metavar="TOPICS",
                        help="comma-separated topics to play (default: every topic of the bag)")
    parser.add_argument("--remap", type=remap_list, default=(), metavar="FROM=TO,...",
                        help="play bag topics under other names (comma-separated; --wait-for names the new ones)")
    parser.add_argument("--wait-only", action="store_true",
                        help="wait for --wait-for, then exit without playing (gates another player)")
    args = parser.parse_args(argv)
    try:
        return PlayOptions(bag=args.bag, rate=args.rate, clock=args.clock, wait_for=args.wait_for,
                           wait_timeout_s=args.wait_timeout, delay_s=args.delay, topics=args.topics,
                           wait_only=args.wait_only, remap=args.remap)
    except ValueError as exc:
        parser.error(str(exc))  # prints the usage and exits with status 2


def main(argv: list[str] | None = None) -> int:
    """Run the player (``argv`` as ``sys.argv``, ROS arguments included). Returns the exit code."""
    import rclpy
    from rclpy.utilities import remove_ros_args
    from rosbags.rosbag2 import Reader, ReaderError

    from object_permanence.ros.runner import StopRequests, use_package_dds_profile

    argv = list(sys.argv if argv is None else argv)
    options = parse_args(remove_ros_args(argv)[1:])
    use_package_dds_profile()
    stops = StopRequests()
    stops.install()
    rclpy.init(args=argv)
    node = rclpy.create_node("play_bag")
    log = node.get_logger()

    def stopped() -> bool:
        return stops.requested or not rclpy.ok()

    try:
        with Reader(options.bag) as reader:
            connections = [c for c in reader.connections
                           if (not options.topics or c.topic in options.topics)
                           and not (options.clock and c.topic == "/clock")]
            remap = dict(options.remap)
            absent = sorted(set(options.wait_for) - {remap.get(c.topic, c.topic) for c in connections})
            if absent:
                log.error(f"{options.bag}: --wait-for names {', '.join(absent)}, which it does not play")
                return 2
            if not connections:
                log.error(f"{options.bag}: nothing to play (topics in the bag: "
                          f"{', '.join(sorted(c.topic for c in reader.connections)) or 'none'})")
                return 2
            player = BagPlayer(node, connections, options.clock, stopped, remap)
            if options.wait_for:
                log.info(f"waiting for subscribers on {', '.join(options.wait_for)}")
                missing = player.wait_for_subscribers(options.wait_for, options.wait_timeout_s)
                if stopped():
                    return 0
                if missing:
                    log.error(f"no subscriber on {', '.join(missing)} after {options.wait_timeout_s:g} s: "
                              "start the nodes first, or leave these topics out of --wait-for")
                    return 1
            if not sleep_until(time.monotonic() + options.delay_s, stopped) or options.wait_only:
                return 0
            log.info(f"playing {options.bag} ({len(player.publishers)} topics) at rate {options.rate:g}")
            begin = time.monotonic()
            count = player.play(reader.messages(connections=connections), options.rate)
            if not player.wait_for_acks(ACK_TIMEOUT_S) and not stopped():
                log.warning(f"some subscribers did not acknowledge the last messages within {ACK_TIMEOUT_S:g} s")
            log.info(f"played {count} messages in {time.monotonic() - begin:.1f} s"
                     + (" (stopped)" if stopped() else ""))
            return 0
    except (OSError, ValueError, ReaderError) as exc:  # a missing or unreadable bag, an unknown type
        log.error(f"{options.bag}: {type(exc).__name__}: {exc}")
        return 2
    except RuntimeError:  # rclpy's errors of a publish racing a stop (RCLError, InvalidHandle)
        if not stopped():
            raise
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stops.ignore_from_now()


if __name__ == "__main__":
    sys.exit(main())
