"""Export the re-ID checkpoint to ONNX for the detector's torch-free ``embedding: learned`` path,
and check that the export embeds as the checkpoint does.

    python -m object_permanence.tools.export_reid --weights models/reid/reid_net.pt \\
        --out models/reid/reid_net.onnx          # the shipped file (make export-reid)

The export (:func:`embedder.export_onnx`) is the fused network (batch norms folded) with its crop
size and embedding length as metadata. The check embeds every object box of ``--frames`` rendered
held-out stereo pairs through the checkpoint on torch and through the export on onnxruntime
(:class:`embedder.LearnedEmbedder`, CPU) and fails (exit 1) when an embedding differs beyond
``--tolerance`` or is not finite.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from object_permanence.tools.export_check import export_parser, finish_check, load_for_export


def compare(weights: Path, onnx_path: Path, frames: int, scenario: str = "cluttered", seed: int = 1000) -> dict:
    """Boxes embedded and the largest |checkpoint - export| over them, on rendered held-out frames."""
    from object_permanence.core.reid.embedder import LearnedEmbedder
    from object_permanence.core.sim.scenarios import make_scenario
    from object_permanence.core.sim.world import SimWorld

    reference, exported = LearnedEmbedder(weights, "cpu", "torch"), LearnedEmbedder(onnx_path, "cpu")
    world = SimWorld(make_scenario(scenario), seed)
    boxes, largest = 0, 0.0
    for k in range(0, 7 * frames, 7):
        truth = world.ground_truth(k)
        for image, entries in zip(world.render(k), (truth.left, truth.right)):
            b = np.array([g.box for g in entries], np.float64).reshape(-1, 4)
            if len(b):
                diff = np.abs(reference.embed(image, b) - exported.embed(image, b))
                largest = max(largest, float(diff.max())) if np.isfinite(diff).all() else float("inf")
                boxes += len(b)
    return {"boxes": boxes, "max_abs_diff": largest}


def _load_checkpoint(path: Path):
    """The re-ID checkpoint (torch is imported only once the file is known to be there)."""
    from object_permanence.core.reid.model import load_checkpoint

    return load_checkpoint(path)


def main(argv: list[str] | None = None) -> int:
    parser = export_parser(__doc__, "models/reid/reid_net.pt", "frames", 10, "held-out stereo pairs of the check")
    args = parser.parse_args(argv)
    model, _, out = load_for_export(parser, args, _load_checkpoint, "train-reid")
    from object_permanence.core.reid.embedder import export_onnx
    from object_permanence.core.reid.model import fuse_for_inference
    export_onnx(fuse_for_inference(model), out)
    print(f"exported {args.weights} -> {out} ({out.stat().st_size / 1024:.0f} KiB), crops "
          f"{tuple(model.config.input_size)}, {model.dim}-d embeddings")
    if args.frames <= 0:
        return 0
    check = compare(args.weights, out, args.frames)
    return finish_check(args, out, check["max_abs_diff"], check,
                        f"check on {check['boxes']} boxes of {args.frames} held-out pairs: largest difference "
                        f"{check['max_abs_diff']:.1e}")


if __name__ == "__main__":
    sys.exit(main())
