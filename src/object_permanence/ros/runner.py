"""The one ``main`` every node executable shares: init, construct, spin, shut down cleanly."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, Executor, SingleThreadedExecutor
from rclpy.node import Node

from object_permanence.ros.params import ParameterError


def use_package_dds_profile() -> None:
    """With Fast DDS and no profile chosen by the user, use the package's (config/fastdds.xml:
    shared-memory segments large enough for camera images; with the 512 kB default most images
    between processes are lost). A profile the user set, or another RMW, is left alone."""
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or \
            os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        profile = Path(get_package_share_directory("object_permanence")) / "config" / "fastdds.xml"
    except PackageNotFoundError:
        return
    if profile.is_file():
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)


def spin_nodes(factories: Sequence[Callable[[], Node]], args: list[str] | None = None,
               executor: Executor | None = None) -> int:
    """Create the nodes on one executor and spin until shutdown (SIGINT) or until a node
    asks to stop by calling ``rclpy.shutdown()``. Returns the process exit code: 0 on a clean
    stop, 2 when a node rejected its parameters (the log says which and why).

    On SIGINT rclpy shuts the context down and raises KeyboardInterrupt wherever the main thread
    is, at times inside a C call that then fails with an unrelated error: any exception raised
    once the context is down counts as a clean stop.
    """
    use_package_dds_profile()
    rclpy.init(args=args)
    nodes: list[Node] = []
    code = 0
    try:
        for make in factories:
            nodes.append(make())
        executor = executor or SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except ParameterError as exc:
        rclpy.logging.get_logger("object_permanence").fatal(f"bad parameter: {exc}")
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # raised while shutting down (a call interrupted by the shutdown): a clean stop
    finally:
        for node in nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


def main_for(node_cls: type[Node]) -> Callable[[list[str] | None], int]:
    """A ``main(args=None)`` for a single-node executable."""
    def main(args: list[str] | None = None) -> int:
        return spin_nodes([node_cls], args if args is not None else sys.argv)
    main.__doc__ = f"Run the {node_cls.__name__} node until shutdown."
    return main
