"""`make bench` (detector): time per stereo pair of the YOLO backends — ultralytics (torch) and
onnxruntime (the same weights exported by tools/export_detector) — at several inference sizes, and
check that their outputs agree.

The unit of work is the detector node's: one ``detect([left, right])`` call on a rendered 640x480
sim stereo pair (letterbox, one batched forward pass, decoding, NMS, mapping back). Each backend
gets ``--warmup`` calls, then ``--iters`` timed calls; the median is reported. The ONNX model is
exported per size into a temporary folder at the rectangular input the torch backend uses for
these images (e.g. 320x256 at imgsz 320), batch 2, and quantized to int8 (``onnxruntime-int8``:
:mod:`quantize_detector`, calibrated on tuning scenes; CPU only). All run on the CPU with one thread
per core and with 1 thread (better when another process holds a core). CUDA rows are added where
torch sees a GPU (and fp16 with ``half``), and where the installed onnxruntime offers CUDA.

Writes ``<out>/detector.json``: ``rows`` (``backend``, ``imgsz``, ``device``, ``ms_per_pair_median``,
plus ``ms_per_pair_p95``, ``cpu_ms_per_pair_median`` (process CPU time per call: for a one-thread
row, the time on an otherwise idle core), ``input_hw``, ``threads``, ``half``), ``agreement`` per imgsz (torch vs
onnxruntime on ``--agreement-frames`` held-out sim pairs: matched boxes, largest box difference in
pixels, class mismatches; ``int8_vs_float``: the int8 model against the float export), the weights, and the load average before and after. Timings depend on
the machine's load: run it on a quiet machine.

    python -m object_permanence.tools.bench_detector --out out/bench [--weights models/detector/sim_yolo.pt]

Without ``--weights`` the trained ``models/detector/sim_yolo.pt`` is used when present, else an
untrained network from ``yolov8n.yaml`` (same compute as trained yolov8n weights; its boxes are
meaningless, so its agreement check is only on raw outputs). Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from object_permanence.core.detection.letterbox import rect_input_hw
from object_permanence.tools.export_detector import (
    check_agreement,
    export_onnx,
    raw_head_difference,
    sim_pairs,
)
from object_permanence.tools.quantize_detector import calibration_pairs, check_quantized, quantize_detector

TRAINED = Path("models/detector/sim_yolo.pt")


def time_calls(call: Callable[[], object], warmup: int, iters: int, sync: Callable[[], None] = lambda: None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and process CPU seconds of each of ``iters`` calls after ``warmup`` untimed ones
    (``sync`` waits for the device). The CPU time counts every thread of this process; for a
    one-thread run it is what the call takes on an otherwise idle core, whatever else loads the machine."""
    for _ in range(warmup):
        call()
    sync()
    wall, cpu = np.empty(iters), np.empty(iters)
    for i in range(iters):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        sync()
        wall[i], cpu[i] = time.perf_counter() - start, time.process_time() - start_cpu
    return wall, cpu


def _row(backend: str, imgsz: int, device: str, times: tuple[np.ndarray, np.ndarray], input_hw: tuple[int, int],
         threads: int | None = None, half: bool = False) -> dict:
    wall, cpu = times
    return {"backend": backend, "imgsz": imgsz, "device": device,
            "ms_per_pair_median": round(1e3 * float(np.median(wall)), 2),
            "ms_per_pair_p95": round(1e3 * float(np.percentile(wall, 95)), 2),
            "cpu_ms_per_pair_median": round(1e3 * float(np.median(cpu)), 2),
            "input_hw": list(input_hw), "threads": threads, "half": half, "iters": len(wall)}


def _weights(arg: str | None, folder: Path) -> Path:
    """The .pt to bench: --weights (a model .yaml: an untrained network of it, saved in ``folder``),
    else the trained sim model, else an untrained yolov8n."""
    if arg and not arg.endswith((".yaml", ".yml")):
        return Path(arg)
    if not arg and TRAINED.is_file():
        return TRAINED
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = folder / f"{Path(arg or 'yolov8n.yaml').stem}_untrained.pt"
    YOLO(arg or "yolov8n.yaml", task="detect").save(str(path))
    return path


def bench(weights: Path, sizes: list[int], pair: list[np.ndarray], agreement_pairs: list, warmup: int, iters: int,
          folder: Path, calib_pairs: list) -> tuple[list[dict], dict]:
    """Rows of every backend x size x device, and per size the torch-vs-onnxruntime agreement and the
    int8 quantization's (calibrated on ``calib_pairs``) against the float export."""
    import onnxruntime as ort
    import torch

    from object_permanence.core.detection.onnx_backend import OnnxDetector
    from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector

    rows, agreement = [], {}
    cpu_threads = sorted({os.cpu_count() or 1, 1}, reverse=True)  # every core, and one
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    ort_devices = ["cpu"] + (["cuda"] if "CUDAExecutionProvider" in ort.get_available_providers() else [])
    for imgsz in sizes:
        input_hw = rect_input_hw(pair[0].shape[:2], imgsz)
        onnx_path = export_onnx(weights, folder / f"model_{imgsz}.onnx", input_hw, batch=2)
        for device, half, threads in [("cpu", False, n) for n in cpu_threads] + [
                ("cuda", half, None) for half in (False, True) if "cuda" in devices]:
            if threads:
                torch.set_num_threads(threads)  # ultralytics leaves torch at OMP_NUM_THREADS=1 unless set
            detector = UltralyticsDetector(str(weights), device=device, imgsz=imgsz, half=half)
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
            rows.append(_row("ultralytics", imgsz, name, time_calls(lambda: detector.detect(pair), warmup, iters, sync),
                             input_hw, threads, half))
        for device, threads in [("cpu", n) for n in cpu_threads] + [("cuda", 0) for _ in ort_devices[1:]]:
            detector = OnnxDetector(str(onnx_path), device=device, threads=threads if device == "cpu" else 0)
            rows.append(_row("onnxruntime", imgsz, device, time_calls(lambda: detector.detect(pair), warmup, iters),
                             input_hw, threads if device == "cpu" else None))
        int8_path = quantize_detector(onnx_path, folder / f"model_{imgsz}_int8.onnx", calib_pairs)
        for threads in cpu_threads:
            detector = OnnxDetector(str(int8_path), device="cpu", threads=threads)
            rows.append(_row("onnxruntime-int8", imgsz, "cpu", time_calls(lambda: detector.detect(pair), warmup, iters),
                             input_hw, threads))
        raw = raw_head_difference(weights, onnx_path, pair)
        agreement[str(imgsz)] = {"raw_max_abs_diff": raw,
                                 **asdict(check_agreement(weights, onnx_path, agreement_pairs, imgsz=imgsz)),
                                 "int8_vs_float": asdict(check_quantized(onnx_path, int8_path, agreement_pairs))}
    return rows, agreement


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--weights", default=None, help="ultralytics .pt, or a model .yaml for an untrained network "
                        "(default: the trained sim model, else an untrained yolov8n)")
    parser.add_argument("--imgsz", default="320,640", help="comma-separated inference sizes")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--agreement-frames", type=int, default=10, help="held-out sim pairs of the agreement check")
    parser.add_argument("--calib-pairs", type=int, default=8,
                        help="tuning-scene pairs per scenario and seed calibrating the int8 rows (tools/quantize_detector)")
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "True")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    sizes = [int(s) for s in args.imgsz.split(",") if s.strip()]
    pairs = [list(p) for p in sim_pairs("cluttered", 1000, max(args.agreement_frames, 1))]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        weights = _weights(args.weights, Path(tmp))
        rows, agreement = bench(weights, sizes, pairs[0], pairs, args.warmup, args.iters, Path(tmp),
                                calibration_pairs(pairs_per_run=args.calib_pairs))
    load_after = os.getloadavg()
    untrained = weights.stem.endswith("_untrained")
    report = {"weights": f"{args.weights or 'yolov8n.yaml'} (untrained)" if untrained else str(weights),
              "image_size": [pairs[0][0].shape[1], pairs[0][0].shape[0]], "cpu_count": os.cpu_count(),
              "rows": rows, "agreement": agreement,
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in load_after]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detector.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"detector bench, {report['weights']}, one 640x480 stereo pair per call, load average "
          f"{load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'backend':<16} {'imgsz':>5} {'input':>8} {'device':<24} {'threads':>7} {'half':>5} "
          f"{'median ms':>9} {'p95 ms':>8} {'cpu ms':>7}")
    for r in rows:
        print(f"{r['backend']:<16} {r['imgsz']:>5} {r['input_hw'][1]:>4}x{r['input_hw'][0]:<3} {r['device']:<24} "
              f"{str(r['threads'] if r['threads'] is not None else '-'):>7} {str(r['half']):>5} "
              f"{r['ms_per_pair_median']:>9.1f} {r['ms_per_pair_p95']:>8.1f} {r['cpu_ms_per_pair_median']:>7.1f}")
    for imgsz, a in agreement.items():
        print(f"agreement at {imgsz} (torch vs onnxruntime, {args.agreement_frames} held-out pairs): {a['matched']} "
              f"matched, {a['only_first']} only torch, {a['only_second']} only onnx, {a['class_mismatches']} class "
              f"mismatches, max box diff {a['max_box_diff_px']:.3f} px; raw head max diff "
              f"{a['raw_max_abs_diff']['box_px']:.1e} px")
        q = a["int8_vs_float"]
        print(f"  int8 vs float onnx at {imgsz}: {q['matched']} matched, {q['only_first']} only float, "
              f"{q['only_second']} only int8, {q['class_mismatches']} class mismatches, "
              f"max box diff {q['max_box_diff_px']:.1f} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
