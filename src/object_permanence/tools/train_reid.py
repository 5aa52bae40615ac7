"""Train the re-ID appearance network on identities of the simulated world.

    python -m object_permanence.tools.train_reid

Training identities come from seeds 0-899 (``--worlds-per-seed`` worlds each, the scenarios in
turn, so every scenario including ``reentry`` and its look-alike newcomers is covered), validation
identities from seeds 900-999 (one world each; a gallery holds six consecutive seeds, every
scenario once). Early stopping on the validation rank-1; the best epoch's weights are kept.
Deterministic by ``--seed`` on ``--threads`` CPU threads (1 by default: on a shared 2-core machine
two threads fight the other processes and run slower).

Writes ``<weights>`` (default ``models/reid/reid_net.pt``), ``MODEL_CARD.md`` and
``training_curves.png`` beside it, and ``<out>/history.json``. The rendered crops are cached in
``<out>/cache/`` (keyed by the data arguments) so a second run skips the rendering.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm


CACHE_VERSION = 2  # bump when the cached crops' content changes


def seed_range(text: str) -> range:
    """``lo-hi`` (inclusive) -> range; ValueError otherwise."""
    try:
        lo, hi = (int(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed range lo-hi, got {text!r}") from None
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"expected 0 <= lo <= hi, got {text!r}")
    return range(lo, hi + 1)


def _text(seeds: range) -> str:
    return f"{seeds.start}-{seeds.stop - 1}"


def plot_curves(history: list[dict], baseline_rank1: float, path: Path) -> None:
    """Losses and validation rank-1 / mAP per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_ce"] for h in history], label="cross-entropy (identities)")
    a.plot(ep, [h["train_triplet"] for h in history], label="batch-hard triplet")
    a.set_xlabel("epoch"), a.set_yscale("log"), a.legend(), a.set_title("training loss")
    b.plot(ep, [h["val_rank1"] for h in history], label="rank-1")
    b.plot(ep, [h["val_map"] for h in history], label="mAP")
    b.axhline(baseline_rank1, color="grey", linestyle="--", label="colour histogram rank-1")
    b.set_xlabel("epoch"), b.set_ylim(0.0, 1.0), b.legend(), b.set_title("validation (seeds 900-999)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_model_card(path: Path, weights: Path, summary: dict) -> None:
    """MODEL_CARD.md beside the weights: data, size, metrics, command."""
    d, v, c, t = summary["data"], summary["val"], summary["model"], summary["config"]
    h = summary["val_colour_histogram"]
    lines = [
        "# Re-ID appearance network — model card", "",
        "Maps the crop of one detection box to an L2-normalised appearance vector; the cosine distance of two "
        "vectors is the world model's appearance cost (re-identifying a ghost after an occlusion or a re-entry). "
        "A drop-in alternative to the colour-histogram embedder: "
        "`object_permanence.core.reid.embedder.LearnedEmbedder(weights, device)`.", "",
        "## Model",
        f"- `{weights.name}`: {weights.stat().st_size / 1e6:.2f} MB, {summary['parameters']} parameters; "
        f"a VGG-like CNN of 3x3 convolutions (widths {c['widths']}), input {c['input_size'][0]}x{c['input_size'][1]} "
        f"(H x W) BGR crops of the whole box (stretched) plus the box's log aspect ratio; the head also sees the "
        f"chromaticity of the crop's central half (fine hue); output {c['embedding_dim']}-d, unit length.",
        "- Batch norms are folded into the convolutions at load time; all boxes of an image run as one batch.",
        f"- `{weights.with_suffix('.onnx').name}` (`make export-reid`, run by `make train-reid`): the fused network "
        "exported to ONNX, the detector's CPU path for `embedding: learned` (onnxruntime, no torch).", "",
        "## Data (simulated; ground truth labels the crops only)",
        f"- Train: seeds {d['train_seeds']}, {d['worlds_per_seed']} world(s) per seed (scenarios in turn: every "
        f"preset, `reentry` with its look-alike newcomers included), {d['frames_per_world']} frames per world, both "
        f"cameras: {d['train_crops']} crops of {d['train_identities']} identities (identity = scenario, seed, object).",
        f"- Crops: the visible box of objects at least {d['min_visibility']:.0%} visible and {d['min_box_px']:.0f} px "
        f"wide and high, moved and scaled by {d['box_jitter']:.0%} of the box size (std), as a detector's boxes are.",
        f"- Validation: seeds {d['val_seeds']}, one world each, {v['n_queries']} identities with a query and a "
        "gallery crop >= 2 s apart (half across cameras); gallery = all identities of six consecutive seeds.",
        "- Held out entirely: seeds >= 1000 (`python -m object_permanence.tools.eval_reid`).", "",
        "## Training",
        f"- Loss: cross-entropy over the training identities (cosine classifier, scale {t['ce_scale']}, "
        f"margin {t['ce_margin']}) + batch-hard triplet (margin {t['triplet_margin']}); "
        f"batches of {t['identities_per_batch']} identities x {t['crops_per_identity']} "
        "crops filled world by world (look-alikes meet their originals); AdamW, one-cycle learning rate "
        f"(peak {t['lr']}).",
        f"- Best epoch {summary['best_epoch']} of {summary['epochs_run']} (early stopping on validation rank-1, "
        f"patience {t['patience']}); data {summary['data_seconds']:.0f} s + training "
        f"{summary['train_seconds']:.0f} s on the CPU ({summary['threads']} torch thread(s), the machine shared "
        "with other work), "
        f"seed {t['seed']}.",
        f"- Validation at the best epoch: rank-1 {v['rank1']:.3f}, mAP {v['map']:.3f} (colour histogram on the same "
        f"crops: rank-1 {h['rank1']:.3f}, mAP {h['map']:.3f}).",
        "- Curves: `training_curves.png`. Held-out figures: `out/eval/reid.json` (`tools/eval_reid.py`).", "",
        "## Reproduce", "```", summary["command"], "```", "",
        "## Limits",
        "- Trained on the simulator only (photographic textures, no lighting change): a real camera needs real "
        "identity crops; none were used (the common person re-ID sets, e.g. Market-1501, are research-only "
        "downloads, not installable packages).",
        "- The world model's appearance gates (`reid_max_appearance_cost`, `gallery_max_appearance_cost`) were "
        "tuned on colour-histogram distances; see the cost percentiles in `out/eval/reid.json` before reusing them.",
    ]
    path.write_text("\n".join(lines) + "\n")


def _load_or_build(cache: Path, build):
    from object_permanence.core.reid.dataset import IdentityCrops

    if cache.is_file():
        return IdentityCrops.load(cache)
    data = build()
    cache.parent.mkdir(parents=True, exist_ok=True)
    data.save(cache)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-seeds", type=seed_range, default=seed_range("0-899"))
    parser.add_argument("--val-seeds", type=seed_range, default=seed_range("900-999"))
    parser.add_argument("--worlds-per-seed", type=int, default=1, help="training worlds per seed (1-6)")
    parser.add_argument("--frames-per-world", type=int, default=8)
    parser.add_argument("--weights", type=Path, default=Path("models/reid/reid_net.pt"))
    parser.add_argument("--out", type=Path, default=Path("out/reid"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from object_permanence.core.appearance import ColorHistogramEmbedder
    from object_permanence.core.reid.crops import crop_boxes, rect_log_aspect
    from object_permanence.core.reid.dataset import (
        SightingRules,
        build_identity_crops,
        embed_probes,
        sample_probes,
        worlds_for_seeds,
    )
    from object_permanence.core.reid.model import ReidNet, count_parameters, save_checkpoint
    from object_permanence.core.reid.retrieval import retrieval_metrics
    from object_permanence.core.reid.training import TrainingConfig, embed_crops, train

    torch.set_num_threads(args.threads)  # a tool sets its own process's threads; the library never does
    torch.use_deterministic_algorithms(True)
    config = TrainingConfig(max_epochs=args.epochs, patience=args.patience, lr=args.lr, seed=args.seed)
    torch.manual_seed(args.seed)  # the network's initial weights
    model = ReidNet()
    rules, size = SightingRules(), tuple(model.config.input_size)
    start = time.perf_counter()
    key = hashlib.sha1(repr((CACHE_VERSION, _text(args.train_seeds), args.worlds_per_seed, args.frames_per_world,
                             rules, size,
                             args.seed)).encode()).hexdigest()[:10]
    train_worlds = worlds_for_seeds(args.train_seeds, args.worlds_per_seed)
    data = _load_or_build(args.out / "cache" / f"train_{key}.npz", lambda: build_identity_crops(
        train_worlds, args.frames_per_world, rules, size, seed=args.seed,
        progress=lambda it: tqdm(it, desc="render training crops", unit="world")))
    val_worlds = worlds_for_seeds(args.val_seeds, 1)
    probes = sample_probes(val_worlds, rules=rules, seed=args.seed, seeds_per_batch=6,
                           progress=lambda it: tqdm(it, desc="validation probes", unit="world"))
    val = embed_probes(probes, {"crops": lambda image, boxes: crop_boxes(image, boxes, size)[0],
                                "colour_histogram": ColorHistogramEmbedder().embed},
                       progress=lambda it: tqdm(it, desc="validation crops", unit="world"))
    baseline = retrieval_metrics(val["colour_histogram"], probes)
    rig = val_worlds[0].build().rig
    val_aspect = rect_log_aspect(probes.box, rig.width, rig.height)
    data_seconds = time.perf_counter() - start
    result = train(model, data, probes, val["crops"], val_aspect, config,
                   progress=lambda it: tqdm(it, desc="train re-ID", unit="epoch"))
    best = retrieval_metrics(embed_crops(model, val["crops"], val_aspect), probes)
    summary = {
        "command": " ".join(["python -m object_permanence.tools.train_reid",
                             *(argv if argv is not None else sys.argv[1:])]),
        "parameters": count_parameters(model), "model": model.config.as_dict(), "config": config.as_dict(),
        "threads": args.threads, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
        "data_seconds": data_seconds, "train_seconds": result.seconds, "val": best, "val_colour_histogram": baseline,
        "data": {"train_seeds": _text(args.train_seeds), "val_seeds": _text(args.val_seeds),
                 "worlds_per_seed": args.worlds_per_seed, "frames_per_world": args.frames_per_world,
                 "train_crops": int(len(data.crops)), "train_identities": int(data.n_identities),
                 "min_visibility": rules.min_visibility, "min_box_px": rules.min_box_px,
                 "box_jitter": rules.box_jitter},
    }
    save_checkpoint(args.weights, model, {"val_rank1": best["rank1"], "val_map": best["map"], "seed": args.seed,
                                          "train_seeds": _text(args.train_seeds)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "history.json").write_text(json.dumps({"summary": summary, "history": result.history}, indent=2) + "\n")
    plot_curves(result.history, baseline["rank1"], args.weights.parent / "training_curves.png")
    write_model_card(args.weights.parent / "MODEL_CARD.md", args.weights, summary)
    print(f"best epoch {result.best_epoch}/{len(result.history)}: validation rank-1 {best['rank1']:.3f} "
          f"mAP {best['map']:.3f} (colour histogram {baseline['rank1']:.3f} / {baseline['map']:.3f}); "
          f"{summary['parameters']} parameters; data {data_seconds:.0f} s, training {result.seconds:.0f} s; "
          f"written {args.weights} ({args.weights.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
