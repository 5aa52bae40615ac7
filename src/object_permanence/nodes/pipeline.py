"""pipeline: every node of the graph composed in one process on one executor (no
inter-process copies of images; the same parameters files and remappings as the separate nodes)."""
from __future__ import annotations

import sys

from object_permanence.nodes.detector import DetectorNode
from object_permanence.nodes.llm_explainer import LlmExplainerNode
from object_permanence.nodes.persistence_filter import PersistenceFilterNode
from object_permanence.nodes.stereo_capture import StereoCaptureNode
from object_permanence.nodes.triangulator import TriangulatorNode
from object_permanence.nodes.world_model import WorldModelNode
from object_permanence.ros.runner import spin_nodes

# Downstream first, so every subscriber exists before the capture timer publishes.
NODES = (LlmExplainerNode, TriangulatorNode, PersistenceFilterNode, WorldModelNode, DetectorNode, StereoCaptureNode)


def main(args: list[str] | None = None) -> int:
    """Run all nodes until shutdown."""
    return spin_nodes(NODES, args if args is not None else sys.argv)
