"""Time persistence scoring: 64 tracks x 32 frames in one batch (DESIGN bar: <= 10 ms median on
this 2-core CPU).

    python -m object_permanence.tools.bench_persistence --out out/bench

Times ``TransformerPersistence.decide`` (padding, one batched forward pass, decisions with
hysteresis) on the CPU with ``--threads`` threads, through torch (the ``.pt``, traced) and through
ONNX Runtime (its ``--onnx`` export, when there), and on CUDA through torch when a GPU is present; the min-hits rule and the shipped gradient-boosting model
(``--boosting``, when scikit-learn and the file are there) beside it. Histories are real rows
from ``out/persistence/data/test.npz`` when present (else rows of the shape the filter produces,
drawn from a fixed seed). Writes ``<out>/persistence.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from object_permanence.core.persistence import MinHitsBaseline, TrackHistory
from object_permanence.core.persistence.classical import load_boosting, sklearn_available
from object_permanence.core.persistence.dataset import TrackSequences
from object_permanence.core.persistence.history import N_FEATURES
from object_permanence.core.persistence.training import HISTORY_LEN


def bench_histories(n_tracks: int, n_frames: int, data: Path | None, seed: int = 0) -> list[TrackHistory]:
    """``n_tracks`` histories of ``n_frames`` rows each (rows set directly, as the filter leaves them)."""
    rng = np.random.default_rng(seed)
    rows = None
    if data is not None and data.is_file():
        seqs = TrackSequences.load(data)
        long = np.flatnonzero(seqs.lengths() >= n_frames)
        if len(long):
            rows = [seqs.sequence(int(i))[:n_frames] for i in rng.choice(long, n_tracks)]
    if rows is None:
        rows = [rng.normal(size=(n_frames, N_FEATURES)).astype(np.float32) for _ in range(n_tracks)]
    return [TrackHistory.from_rows(i, r, n_frames) for i, r in enumerate(rows)]


def time_decide(model, histories: list[TrackHistory], repeats: int, warmup: int = 5, sync=None) -> dict[str, float]:
    """Median and p95 wall time (ms) of ``model.decide(histories)``."""
    for _ in range(warmup):
        model.decide(histories)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.decide(histories)
        if sync is not None:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)), "repeats": repeats}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--weights", type=Path, default=Path("models/persistence/persistence_transformer.pt"))
    parser.add_argument("--onnx", type=Path, default=Path("models/persistence/persistence_transformer.onnx"),
                        help="the checkpoint's ONNX export (tools/export_persistence), timed on ONNX Runtime")
    parser.add_argument("--boosting", type=Path, default=Path("models/persistence/persistence_boosting.joblib"))
    parser.add_argument("--data", type=Path, default=Path("out/persistence/data/test.npz"))
    parser.add_argument("--tracks", type=int, default=64)
    parser.add_argument("--frames", type=int, default=HISTORY_LEN)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch / ONNX Runtime CPU threads (this machine has 2 cores)")
    args = parser.parse_args(argv)
    import torch

    from object_permanence.core.persistence.transformer_filter import TransformerPersistence

    torch.set_num_threads(args.threads)
    histories = bench_histories(args.tracks, args.frames, args.data)
    rows = [{"device": "cpu", "method": "transformer", "runtime": "torch", "threads": args.threads,
             **time_decide(TransformerPersistence(args.weights, "cpu"), histories, args.repeats)}]
    if args.onnx.is_file():
        rows.append({"device": "cpu", "method": "transformer", "runtime": "onnxruntime", "threads": args.threads,
                     **time_decide(TransformerPersistence(args.onnx, "cpu", threads=args.threads), histories,
                                   args.repeats)})
    rows += [
            {"device": "cpu", "method": "min_hits", **time_decide(MinHitsBaseline(), histories, args.repeats)}]
    if sklearn_available() and args.boosting.is_file():
        rows.append({"device": "cpu", "method": "gradient_boosting",
                     **time_decide(load_boosting(args.boosting), histories, args.repeats)})
    if torch.cuda.is_available():
        rows.append({"device": "cuda", "method": "transformer", "runtime": "torch", "gpu": torch.cuda.get_device_name(0),
                     **time_decide(TransformerPersistence(args.weights, "cuda"), histories, args.repeats,
                                   sync=torch.cuda.synchronize)})
    report = {"command": "python -m object_permanence.tools.bench_persistence " + " ".join(argv or sys.argv[1:]),
              "tracks": args.tracks, "frames": args.frames, "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "persistence.json").write_text(json.dumps(report, indent=2) + "\n")
    for r in rows:
        print(f"{r['method']:<17} {r.get('runtime', ''):<11} {r['device']:<5} median {r['median_ms']:.2f} ms  "
              f"p95 {r['p95_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
