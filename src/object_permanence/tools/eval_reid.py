"""Re-identification on held-out identities: the learned embedding against the colour histogram.

    python -m object_permanence.tools.eval_reid

Held-out worlds: every scenario of seeds ``--seeds`` (>= 1000, never used in training or tuning).
For each identity a query and a gallery crop >= 2 s apart in time, half of them across cameras;
the gallery of a query holds every identity of its sequence batch (the six worlds of its seed).
Both embedders see exactly the same boxes of exactly the same images
(:func:`~object_permanence.core.reid.dataset.embed_probes`).

Writes ``<out>/reid.json``: ``reid_rank1``, ``reid_rank1_colour_histogram``, ``reid_map``,
``reid_map_colour_histogram``, ``reid_lookalike_to_original`` (+ ``_colour_histogram``: the share
of look-alike newcomers whose nearest gallery entry is their original, lower is better), every
figure of :func:`~object_permanence.core.reid.retrieval.retrieval_metrics` per embedder, the
protocol, and the embedding time of one frame with ``--bench-boxes`` boxes (median, this machine).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from object_permanence.tools.train_reid import seed_range


def embed_time_ms(embed, image: np.ndarray, boxes: np.ndarray, repeats: int = 50) -> float:
    """Median wall time (ms) of ``embed(image, boxes)`` after a warm-up."""
    for _ in range(5):
        embed(image, boxes)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        embed(image, boxes)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def bench_boxes(world, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A left image of ``world`` and ``n`` boxes: its visible objects, padded with random boxes."""
    from object_permanence.core.types import ObjectKind

    image = world.render(0)[0]
    truth = [g.visible_box for g in world.ground_truth(0).left if g.kind == ObjectKind.OBJECT and g.visibility > 0]
    height, width = image.shape[:2]
    extra = np.column_stack([rng.uniform(40, width - 40, n), rng.uniform(40, height - 40, n),
                             rng.uniform(20, 60, n), rng.uniform(40, 110, n)])
    return image, np.concatenate([np.array(truth).reshape(-1, 4), extra])[:n]


def _torch_threads() -> int | None:
    """torch's intra-op threads where torch is loaded (a .pt checkpoint), else None."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_range, default=seed_range("1000-1049"))
    parser.add_argument("--weights", type=Path, default=Path("models/reid/reid_net.pt"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch"))
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--out", type=Path, default=Path("out/eval"))
    parser.add_argument("--min-gap-s", type=float, default=2.0)
    parser.add_argument("--cross-camera-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe sampling")
    parser.add_argument("--bench-boxes", type=int, default=20)
    args = parser.parse_args(argv)
    if args.seeds.start < 1000:
        parser.error(f"--seeds must be held out (>= 1000), got {args.seeds.start}-{args.seeds.stop - 1}")
    from object_permanence.core.appearance import ColorHistogramEmbedder
    from object_permanence.core.reid.dataset import SightingRules, embed_probes, sample_probes, worlds_for_seeds
    from object_permanence.core.reid.embedder import LearnedEmbedder
    from object_permanence.core.reid.retrieval import retrieval_metrics

    learned = LearnedEmbedder(args.weights, args.device, args.backend, args.threads)
    histogram = ColorHistogramEmbedder()
    rules = SightingRules()
    worlds = worlds_for_seeds(args.seeds)
    probes = sample_probes(worlds, args.min_gap_s, cross_camera_share=args.cross_camera_share, rules=rules,
                           seed=args.seed, progress=lambda it: tqdm(it, desc="held-out probes", unit="world"))
    vectors = embed_probes(probes, {"learned": learned.embed, "colour_histogram": histogram.embed},
                           progress=lambda it: tqdm(it, desc="embed", unit="world"))
    scores = {name: retrieval_metrics(v, probes) for name, v in vectors.items()}
    image, boxes = bench_boxes(worlds[0].build(), args.bench_boxes, np.random.default_rng(args.seed))
    timing = {"boxes": int(len(boxes)), "device": learned.device, "backend": learned.backend,
              "onnxruntime_threads": args.threads, "torch_threads": _torch_threads(),
              "learned_ms_median": embed_time_ms(learned.embed, image, boxes),
              "colour_histogram_ms_median": embed_time_ms(histogram.embed, image, boxes)}
    lrn, hist = scores["learned"], scores["colour_histogram"]
    report = {
        "reid_rank1": lrn["rank1"], "reid_rank1_colour_histogram": hist["rank1"],
        "reid_map": lrn["map"], "reid_map_colour_histogram": hist["map"],
        "reid_lookalike_to_original": lrn["lookalike_to_original"],
        "reid_lookalike_to_original_colour_histogram": hist["lookalike_to_original"],
        "learned": lrn, "colour_histogram": hist,
        "protocol": {"seeds": f"{args.seeds.start}-{args.seeds.stop - 1}", "worlds": len(worlds),
                     "scenarios": sorted({w.scenario for w in worlds}), "identities": lrn["n_queries"],
                     "cross_camera_pairs": int(probes.cross_camera.sum()), "min_gap_s": args.min_gap_s,
                     "gallery": "every identity of the query's seed (six worlds)",
                     "min_visibility": rules.min_visibility, "box_jitter": rules.box_jitter,
                     "weights": str(args.weights), "embedding_dim": learned.dim},
        "embed_time": timing,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reid.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"held-out re-ID ({lrn['n_queries']} identities, {len(worlds)} worlds): rank-1 learned {lrn['rank1']:.3f} vs "
          f"colour histogram {hist['rank1']:.3f}; mAP {lrn['map']:.3f} vs {hist['map']:.3f}; look-alikes nearest to "
          f"their original {lrn['lookalike_to_original']:.3f} vs {hist['lookalike_to_original']:.3f} "
          f"(n={lrn['n_lookalikes']}); embed {timing['boxes']} boxes {timing['learned_ms_median']:.2f} ms vs "
          f"{timing['colour_histogram_ms_median']:.2f} ms; written {args.out / 'reid.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
