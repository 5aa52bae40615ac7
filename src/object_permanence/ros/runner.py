"""The one ``main`` every node executable shares: init, construct, spin, shut down cleanly."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, Executor, SingleThreadedExecutor
from rclpy.node import Node

from object_permanence.ros.params import ParameterError


def spin_nodes(factories: Sequence[Callable[[], Node]], args: list[str] | None = None,
               executor: Executor | None = None) -> int:
    """Create the nodes on one executor and spin until shutdown (SIGINT) or until a node
    asks to stop by calling ``rclpy.shutdown()``. Returns the process exit code: 0 on a clean
    stop, 2 when a node rejected its parameters (the log says which and why).

    On SIGINT rclpy shuts the context down and raises KeyboardInterrupt wherever the main thread
    is, at times inside a C call that then fails with an unrelated error: any exception raised
    once the context is down counts as a clean stop.
    """
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
