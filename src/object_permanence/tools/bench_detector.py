"""Time the YOLO backend on one batched stereo pair (the detector node's unit of work).

    python -m object_permanence.tools.bench_detector --weights yolov8n.yaml --device cuda --imgsz 640

A model YAML builds an untrained network of the same size (same compute as trained weights);
nothing is downloaded.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="yolov8n.yaml")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)
    import torch

    from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector

    detector = UltralyticsDetector(args.weights, device=args.device, imgsz=args.imgsz)
    rng = np.random.default_rng(0)
    pair = [rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8) for _ in range(2)]
    cuda = detector.device.startswith("cuda")
    for _ in range(3):  # warm-up: kernels, allocator
        detector.detect(pair)
    times = []
    for _ in range(args.iters):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        detector.detect(pair)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    name = torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{args.weights} on {name}: one stereo pair ({args.width}x{args.height}, imgsz {args.imgsz}, "
          f"batch of 2): median {1e3 * np.median(times):.1f} ms, p95 {1e3 * np.percentile(times, 95):.1f} ms "
          f"over {args.iters}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
