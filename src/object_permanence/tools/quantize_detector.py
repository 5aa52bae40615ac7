"""Quantize the detector's ONNX export to 8-bit integers for the CPU, calibrated on rendered scenes.

    python -m object_permanence.tools.quantize_detector --onnx models/detector/sim_yolo.onnx \\
        --out models/detector/sim_yolo_int8.onnx          # the shipped file (make export-detector)

ONNX Runtime's static quantization (``onnxruntime.quantization.quantize_static``): QDQ format,
int8 weights per output channel, uint8 activations whose ranges come from ``--calib-*``
rendered stereo pairs of *tuning* scenes (seeds < 1000; never the held-out ones), or with
``--calib-images`` from a folder of images, a video or a rosbag2 recording's image topic
(``--calib-topic``; :mod:`calibration_images`): a robot's own model is calibrated on its own
cameras' images (the activation ranges of a scene decide the rounding). A range is the mean
over the calibration batches of each batch's minimum and maximum (MinMax with a moving average):
on rendered tuning frames (``cluttered`` 30, ``noisy`` 31) the class probabilities of the anchors
that matter moved 0.017 on average against the float model's, 0.027 with the global minimum and
maximum, 0.021 with the entropy and 0.029 with the 99.99th-percentile ranges. The convolutions
then run on integer kernels: on this project's CPU (AVX-512 VNNI) about half the time per stereo
pair (``make bench``: ``out/bench/detector.json``, rows ``onnxruntime-int8``). On x86 CPUs with
AVX2 or AVX-512 but without VNNI, ONNX Runtime's uint8 x int8 kernels can saturate; its guide
advises 7-bit weights there (``--reduce-range``). Check the quantized file's mAP on the target
(``eval_detector --models``) either way.

The head's box decoding stays float32: the last layer of the network (``/model.N/`` in an
Ultralytics export) joins the distribution-of-sides boxes in network pixels (0-320) and the class
probabilities (0-1) in one output tensor, and one uint8 scale over both would round every class
probability to zero. Only the head's convolution branches (``cv2``: boxes, ``cv3``: classes, and
the ``one2one_`` branches of end-to-end models) are quantized; the DFL softmax, the anchor
arithmetic and the final concatenation are left in float32 (:func:`float_head_nodes`).

The check: ``--frames`` held-out stereo pairs (rendered; with ``--calib-images``, pairs of those
images) through the float and the quantized model (both on onnxruntime, CPU, ``--conf``), matched
one to one; the tool prints the matched boxes, those found
by one model only and the largest box and score differences, and writes them with ``--report``.
Exit status 1 when fewer than ``--min-matched`` of the float model's boxes are matched (a broken
quantization finds nothing). Quantization moves boxes by a few pixels: mAP on the held-out test
split is the yardstick (``python -m object_permanence.tools.eval_detector --onnx ...``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from object_permanence.core.detection.yolo_output import Agreement, compare_detections
from object_permanence.tools.calibration_images import image_pairs
from object_permanence.tools.eval_tracking import parse_seeds
from object_permanence.tools.export_detector import sim_pairs

#: Rendered tuning scenes of the calibration (seeds < 1000; those of ``fit_detector_sim``).
CALIB_SCENARIOS = ("cluttered", "noisy", "long_occlusion", "crossing")
#: Branches of an Ultralytics detection head that are convolutions (quantized); the rest of the
#: head is the box decoding (kept float32).
HEAD_CONV_BRANCHES = ("cv2", "cv3", "one2one_cv2", "one2one_cv3")


def float_head_nodes(model) -> list[str]:
    """Names of the nodes of an Ultralytics detection head to keep in float32: every node under the
    head's ``/model.N/`` prefix (the module that writes the graph's output) that is not inside one
    of its convolution branches (:data:`HEAD_CONV_BRANCHES`).

    Raises:
        ValueError: the graph's output does not come from a ``/model.N/`` node (not an Ultralytics
        export), or the head has no convolution branch.
    """
    output = model.graph.output[0].name
    writer = next((node for node in model.graph.node if output in node.output), None)
    parts = writer.name.split("/") if writer is not None else []
    if len(parts) < 3 or not parts[1].startswith("model."):
        raise ValueError(f"output {output!r} is not written by an Ultralytics head node (/model.N/...); "
                         f"got {writer.name if writer is not None else 'no node'!r}")
    prefix = f"/{parts[1]}/"
    head = [node.name for node in model.graph.node if node.name.startswith(prefix)]
    # "/model.22/cv2.1/cv2.1.0/conv/Conv" -> "cv2"; "/model.22/dfl/Softmax" -> "dfl"
    keep = [name for name in head if name[len(prefix):].split("/")[0].split(".")[0] not in HEAD_CONV_BRANCHES]
    if len(keep) == len(head):
        raise ValueError(f"the head {prefix} has no convolution branch ({', '.join(HEAD_CONV_BRANCHES)})")
    return keep


def calibration_pairs(scenarios: Sequence[str] = CALIB_SCENARIOS, seeds: Sequence[int] = (40, 41),
                      pairs_per_run: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rendered stereo pairs of tuning scenes for the activation ranges.

    Raises:
        ValueError: a held-out seed (>= 1000) or ``pairs_per_run`` < 1.
    """
    if any(seed >= 1000 for seed in seeds):
        raise ValueError(f"calibration seeds must be tuning seeds (< 1000), got {list(seeds)}")
    if pairs_per_run < 1:
        raise ValueError(f"pairs_per_run must be >= 1, got {pairs_per_run}")
    return [pair for scenario in scenarios for seed in seeds for pair in sim_pairs(scenario, seed, pairs_per_run, 11)]


def quantize_detector(onnx_path: Path, out: Path, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                      imgsz: int = 0, reduce_range: bool = False) -> Path:
    """Write the static int8 quantization of the YOLO export ``onnx_path`` (float32 or float16-stored
    weights) to ``out``, its activation ranges measured on ``pairs`` letterboxed as the onnxruntime
    backend feeds them at ``imgsz`` (0: the model's fixed input, or 640 for a dynamic-size export:
    give the size the node will run). ``reduce_range``: 7-bit weights, ONNX Runtime's remedy for
    the saturation of its uint8 x int8 kernels on x86 CPUs without VNNI. Returns ``out``.

    Raises:
        ValueError: out not .onnx, no calibration pairs, or a model :func:`float_head_nodes` rejects.
        FileNotFoundError: no such model.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from object_permanence.core.detection.onnx_backend import OnnxDetector

    if out.suffix != ".onnx":
        raise ValueError(f"out must end in .onnx, got {out}")
    if not pairs:
        raise ValueError("no calibration pairs")
    detector = OnnxDetector(str(onnx_path), device="cpu", imgsz=imgsz)  # errors name the file or imgsz

    class Blobs(CalibrationDataReader):
        """The letterboxed input blob of each calibration pair (a copy: the backend reuses its buffer)."""

        def __init__(self) -> None:
            self._pairs: Iterator = iter(pairs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            pair = next(self._pairs, None)
            if pair is None:
                return None
            blob, _ = detector.preprocess(list(pair))
            return {detector.info.input_name: blob.astype(np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"  # shapes inferred, constants (float16 casts) folded
        # A dynamic batch and size export takes ONNX's own shape inference: onnxruntime's symbolic one
        # does not resolve it, and on the way out leaves a copy of the model in the working directory.
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=_dynamic_input(onnx_path))
        keep_float = float_head_nodes(onnx.load(str(prepared)))
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(str(prepared), str(out), Blobs(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float,
                        reduce_range=reduce_range, extra_options={"CalibMovingAverage": True})
    return out


def _dynamic_input(path: Path) -> bool:
    """Whether the model's first input has a dimension that is not a fixed number."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims)


def check_quantized(float_path: Path, quantized_path: Path, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                    conf: float = 0.25) -> Agreement:
    """Both models (onnxruntime, CPU) on each pair, detections matched per image and summed."""
    from object_permanence.core.detection.onnx_backend import OnnxDetector

    reference = OnnxDetector(str(float_path), device="cpu", conf=conf)
    quantized = OnnxDetector(str(quantized_path), device="cpu", conf=conf)
    total = Agreement()
    for pair in pairs:
        for a, b in zip(reference.detect(list(pair)), quantized.detect(list(pair))):
            total = total + compare_detections(a, b)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, help="the float YOLO export (tools/export_detector)")
    parser.add_argument("--out", type=Path, default=None, help="default: <onnx stem>_int8.onnx beside it")
    parser.add_argument("--calib-images", type=Path, default=None,
                        help="calibrate on these images instead of rendered scenes: a folder of image files, a video "
                        "or a rosbag2 recording with --calib-topic (your cameras' own images, for your own model)")
    parser.add_argument("--calib-topic", default=None,
                        help="with a rosbag2 --calib-images: its sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--imgsz", type=int, default=0,
                        help="inference size of a dynamic-size export (0: the model's fixed input, else 640)")
    parser.add_argument("--reduce-range", action="store_true",
                        help="7-bit weights: for x86 CPUs with AVX2 or AVX-512 but no VNNI (see ONNX Runtime's "
                        "quantization guide); check the result's mAP either way")
    parser.add_argument("--calib-scenarios", default=",".join(CALIB_SCENARIOS))
    parser.add_argument("--calib-seeds", default="40-41", help="tuning seeds (< 1000)")
    parser.add_argument("--calib-pairs", type=int, default=8,
                        help="stereo pairs per scenario and seed (with --calib-images: pairs of images, 4x this)")
    parser.add_argument("--frames", type=int, default=20,
                        help="pairs of the check (0: none): held-out sim frames, or with --calib-images pairs of "
                        "those images (evenly spaced over them too: some may be calibration frames)")
    parser.add_argument("--scenario", default="cluttered", help="sim scenario of the check")
    parser.add_argument("--seed", type=int, default=1000, help="sim seed of the check (held-out: >= 1000)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--min-matched", type=float, default=0.9,
                        help="least share of the float model's boxes the quantized one must match")
    parser.add_argument("--report", type=Path, default=None, help="also write the check as JSON here")
    args = parser.parse_args(argv)
    out = args.out or args.onnx.with_name(f"{args.onnx.stem}_int8.onnx")
    try:
        if args.calib_images is not None:
            pairs = image_pairs(args.calib_images, 4 * args.calib_pairs, args.calib_topic)
            calibrated_on = f"{2 * len(pairs)} images of {args.calib_images}" + (
                f" ({args.calib_topic})" if args.calib_topic else "")
        else:
            if args.calib_topic:
                raise ValueError("--calib-topic needs --calib-images (a rosbag2 folder)")
            seeds = parse_seeds(args.calib_seeds)
            pairs = calibration_pairs([s for s in args.calib_scenarios.split(",") if s], seeds, args.calib_pairs)
            calibrated_on = f"{len(pairs)} stereo pairs of {args.calib_scenarios} seeds {args.calib_seeds}"
        quantize_detector(args.onnx, out, pairs, args.imgsz, args.reduce_range)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    print(f"quantized {args.onnx} -> {out} ({out.stat().st_size / 2**20:.1f} MiB), calibrated on {calibrated_on}")
    if args.frames <= 0:
        return 0
    if args.calib_images is not None:  # a robot's own model: checked on its own images, not the sim's
        check_pairs = image_pairs(args.calib_images, args.frames, args.calib_topic)
        checked_on = {"images": str(args.calib_images), "topic": args.calib_topic, "frames": len(check_pairs)}
    else:
        check_pairs = sim_pairs(args.scenario, args.seed, args.frames)
        checked_on = {"scenario": args.scenario, "seed": args.seed, "frames": args.frames}
    agreement = check_quantized(args.onnx, out, check_pairs, args.conf)
    reference_boxes = agreement.matched + agreement.only_first
    share = agreement.matched / reference_boxes if reference_boxes else 1.0
    where = ", ".join(f"{k} {v}" for k, v in checked_on.items() if v is not None)
    print(f"check on {len(check_pairs)} pairs ({where}): {agreement.matched} of "
          f"{reference_boxes} boxes matched ({share:.1%}), {agreement.only_second} found by the int8 model only, "
          f"{agreement.class_mismatches} class changes, largest box difference {agreement.max_box_diff_px:.1f} px, "
          f"score {agreement.max_score_diff:.3f}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"onnx": str(args.onnx), "out": str(out), "calib_pairs": len(pairs),
                                           "calibrated_on": calibrated_on,
                                           "check": {**checked_on, **asdict(agreement)}}, indent=2) + "\n")
    return 0 if share >= args.min_matched else 1


if __name__ == "__main__":
    sys.exit(main())
