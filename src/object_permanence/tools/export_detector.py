"""Export an ultralytics YOLO ``.pt`` to ONNX for the onnxruntime detector backend, and check that
the export agrees with the torch model on rendered sim frames.

    python -m object_permanence.tools.export_detector --weights models/detector/sim_yolo.pt \\
        --out models/detector/sim_yolo.onnx --imgsz 320 --fp16-weights   # the shipped file

The input size is fixed: by default the smallest stride-multiple rectangle holding a
``--image-size`` image (640x480, the sim's) at long side ``--imgsz`` — (256, 320) at 320, what the
torch backend feeds the network for such images, a fifth less compute than a square — or
``--square`` (imgsz x imgsz). The batch is fixed too (``--batch 2``: both stereo views; 0:
dynamic batch and size). ``--fp16-weights`` stores the weights as float16 (half the file, float32
arithmetic). No graph simplifier (onnxslim) is used and ultralytics' automatic pip installs and
online checks are off: nothing is downloaded.

The check: ``--frames`` stereo pairs of ``SimWorld(make_scenario(--scenario), --seed)`` run through
both backends (CPU, ``--conf``); detections are matched one-to-one by IoU and the tool prints how
many matched, the largest box and score differences and class mismatches, plus the largest
difference of the raw head outputs on the same input blob (meaningful for untrained weights too).
Exit status 1 when a matched box differs by more than ``--tolerance-px``, a class differs, or a box
is reported by one backend only.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from object_permanence.core.detection.letterbox import rect_input_hw
from object_permanence.core.detection.yolo_output import Agreement, compare_detections


def _offline() -> None:
    """ultralytics: no pip installs, no online checks (read when ultralytics is first imported)."""
    os.environ.setdefault("YOLO_OFFLINE", "True")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")


def export_onnx(weights: Path, out: Path, input_hw: tuple[int, int], batch: int = 2) -> Path:
    """Export ``weights`` (.pt) to ``out`` (.onnx) at the fixed input ``input_hw`` (H, W) and batch
    (0: dynamic batch and size). The export runs on a copy in a temporary folder, so no file beside
    the weights is touched. Returns ``out``.

    Raises:
        ValueError: weights not a .pt file, out not .onnx, batch < 0, or a size not a multiple of 32.
        FileNotFoundError: no such weights file.
    """
    if weights.suffix != ".pt":
        raise ValueError(f"weights must be an ultralytics .pt file, got {weights}")
    if out.suffix != ".onnx":
        raise ValueError(f"out must end in .onnx, got {out}")
    if not weights.is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    if batch < 0:
        raise ValueError(f"batch must be >= 0 (0: dynamic), got {batch}")
    if min(input_hw) < 32 or any(v % 32 for v in input_hw):
        raise ValueError(f"input_hw must be positive multiples of 32, got {input_hw}")
    _offline()
    from ultralytics import YOLO

    logger = logging.getLogger("ultralytics")  # its export log is long; keep warnings and errors
    level = logger.level
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation and tracer warnings about the export path
        logger.setLevel(logging.WARNING)
        try:
            copy = Path(tmp) / weights.name
            shutil.copyfile(weights, copy)
            exported = YOLO(str(copy), task="detect").export(
                format="onnx", imgsz=list(input_hw), batch=max(batch, 1), dynamic=batch == 0, simplify=False,
                device="cpu", verbose=False)
        finally:
            logger.setLevel(level)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(exported), out)
    return out


def store_weights_fp16(path: Path, min_elements: int = 16) -> int:
    """Rewrite the .onnx at ``path`` with its float32 weight tensors (of ``min_elements`` or more)
    stored as float16, each behind a Cast back to float32: the file is about half the size, the
    arithmetic stays float32 (onnxruntime folds the casts into float32 constants when it loads the
    model, so inference is as fast), and the weights are rounded to float16 once (a relative
    change of at most 2^-11). Returns the number of tensors converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        weights = numpy_helper.to_array(init)
        if weights.size < min_elements:
            continue
        half = numpy_helper.from_array(weights.astype(np.float16), f"{init.name}__fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__cast"))
    for node in reversed(casts):  # ahead of every consumer: the graph stays topologically sorted
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return len(casts)


def raw_head_difference(weights: Path, onnx_path: Path, images: list[np.ndarray]) -> dict[str, float]:
    """Largest |torch - onnxruntime| of the raw head output on the same letterboxed blob of ``images``:
    ``box_px`` over the box channels (network pixels) and ``class_prob`` over the class channels."""
    import torch

    from object_permanence.core.detection.onnx_backend import OnnxDetector

    _offline()
    from ultralytics import YOLO

    onnx = OnnxDetector(str(onnx_path), device="cpu")
    blob, _ = onnx.preprocess(images)
    ort_out = onnx.forward(blob)
    model = YOLO(str(weights), task="detect").model.float().eval()
    with torch.no_grad():
        torch_out = model(torch.from_numpy(blob.astype(np.float32)))
    torch_out = (torch_out[0] if isinstance(torch_out, (list, tuple)) else torch_out).numpy()
    diff = np.abs(torch_out - ort_out)
    return {"box_px": float(diff[:, :4].max()), "class_prob": float(diff[:, 4:].max())}


def check_agreement(weights: Path, onnx_path: Path, pairs: list[tuple[np.ndarray, np.ndarray]],
                    conf: float = 0.25, imgsz: int = 0) -> Agreement:
    """Run both backends (CPU) on each stereo pair and sum their per-image :class:`Agreement`."""
    from object_permanence.core.detection.onnx_backend import OnnxDetector
    from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector

    onnx = OnnxDetector(str(onnx_path), device="cpu", conf=conf)
    torch_detector = UltralyticsDetector(str(weights), device="cpu", imgsz=imgsz or onnx.imgsz, conf=conf)
    total = Agreement()
    for pair in pairs:
        for a, b in zip(torch_detector.detect(list(pair)), onnx.detect(list(pair))):
            total = total + compare_detections(a, b)
    return total


def sim_pairs(scenario: str, seed: int, frames: int, step: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """``frames`` rendered stereo pairs (BGR, the sim's size) of one held-out sim run, every ``step``-th frame."""
    from object_permanence.core.sim.scenarios import make_scenario
    from object_permanence.core.sim.world import SimWorld

    world = SimWorld(make_scenario(scenario), seed)
    return [world.render(k * step) for k in range(frames)]


def _size(text: str) -> tuple[int, int]:
    """'640x480' -> (480, 640) as (h, w)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="ultralytics .pt file")
    parser.add_argument("--out", type=Path, default=None, help=".onnx to write (default: beside the weights)")
    parser.add_argument("--imgsz", type=int, default=320, help="inference size, long side (multiple of 32)")
    parser.add_argument("--image-size", type=_size, default=(480, 640), metavar="WxH",
                        help="the camera images' size, for the rectangular input (default 640x480)")
    parser.add_argument("--square", action="store_true", help="square imgsz x imgsz input instead")
    parser.add_argument("--batch", type=int, default=2, help="fixed batch (2: a stereo pair); 0: dynamic")
    parser.add_argument("--fp16-weights", action="store_true",
                        help="store the weights as float16 (half the file; float32 arithmetic)")
    parser.add_argument("--frames", type=int, default=20, help="sim stereo pairs of the agreement check (0: none)")
    parser.add_argument("--scenario", default="cluttered")
    parser.add_argument("--seed", type=int, default=1000, help="sim seed (held-out: >= 1000)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--tolerance-px", type=float, default=1.0)
    parser.add_argument("--report", type=Path, default=None, help="also write the check as JSON here")
    args = parser.parse_args(argv)
    out = args.out or args.weights.with_suffix(".onnx")
    input_hw = (args.imgsz, args.imgsz) if args.square else rect_input_hw(args.image_size, args.imgsz)
    export_onnx(args.weights, out, input_hw, args.batch)
    if args.fp16_weights:
        store_weights_fp16(out)
    weights_note = ", float16 weights" if args.fp16_weights else ""
    print(f"exported {args.weights} -> {out} ({out.stat().st_size / 2**20:.1f} MiB{weights_note}), "
          f"input {input_hw[1]}x{input_hw[0]}, batch {args.batch or 'dynamic'}")
    if args.frames <= 0:
        return 0
    pairs = sim_pairs(args.scenario, args.seed, args.frames)
    raw = raw_head_difference(args.weights, out, list(pairs[0]))
    agreement = check_agreement(args.weights, out, pairs, args.conf, args.imgsz)
    ok = agreement.agrees(args.tolerance_px)
    print(f"raw head output, torch vs onnxruntime on one blob: max |diff| boxes {raw['box_px']:.2e} px, "
          f"class probabilities {raw['class_prob']:.2e}")
    print(f"{args.frames} stereo pairs ({args.scenario}, seed {args.seed}, conf {args.conf}): {agreement.matched} "
          f"boxes matched, {agreement.only_first} only torch, {agreement.only_second} only onnx, "
          f"{agreement.class_mismatches} class mismatches, max box diff {agreement.max_box_diff_px:.3f} px, "
          f"max score diff {agreement.max_score_diff:.2e} -> {'AGREE' if ok else 'DISAGREE'} "
          f"(tolerance {args.tolerance_px} px)")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({
            "weights": str(args.weights), "onnx": str(out), "input_hw": list(input_hw), "batch": args.batch,
            "fp16_weights": args.fp16_weights, "bytes": out.stat().st_size,
            "scenario": args.scenario, "seed": args.seed, "frames": args.frames, "conf": args.conf,
            "raw_max_abs_diff": raw, **asdict(agreement), "agrees": ok}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
