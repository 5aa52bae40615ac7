"""Train the persistence transformer on the generated track sequences.

    python -m object_permanence.tools.make_persistence_data   # once: out/persistence/data/*.npz
    python -m object_permanence.tools.train_persistence

Deterministic by ``--seed`` (one CPU thread, deterministic torch algorithms, seeded shuffling);
uses a GPU when one is present unless ``--device cpu``. Early stopping on the validation loss
(or, ``--select f1``, the validation per-track F1; ``--patience`` epochs without improvement); the
best epoch's weights (``--ema``: their moving average) are kept. Options for the model's shape, the
running aggregates it is fed, the loss (all frames of the sliding windows, label smoothing) and the
learning-rate schedule; the shipped recipe is the Makefile's ``train-persistence``. The keep threshold
is chosen on the validation seeds (best per-track F1, as the min-hits rule is tuned; a track counts
as kept once any of its frames reaches the threshold, as the sticky filter keeps it); the release
threshold of the hysteresis sits ``--hysteresis`` below it.

Writes ``<weights>`` (default ``models/persistence/persistence_transformer.pt``), its
``MODEL_CARD.md`` and ``training_curves.png`` beside it, and ``<out>/history.json`` (every epoch).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from object_permanence.core.persistence.dataset import HELD_OUT_NUISANCE, HELD_OUT_NUISANCE_NAME, TrackSequences
from object_permanence.core.persistence.history import FEATURES
from object_permanence.core.persistence.training import (
    HISTORY_LEN,
    Windows,
    choose_threshold,
    make_windows,
    prefix_scores_to_track,
)

WINDOW = HISTORY_LEN


def _batches(n: int, size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, size):
        yield order[i:i + size]


def _epoch(model, w: Windows, weights: np.ndarray, device, optimizer=None, rng=None, batch: int = 256,
           smoothing: float = 0.0, scheduler=None, ema=None):
    """One pass; returns (mean weighted loss, per-window-frame scores (N, W)). ``smoothing``: label
    smoothing of the training targets (y' = y (1 - eps) + eps / 2); ``scheduler`` steps and ``ema``
    (an ``AveragedModel``) updates after every optimiser step."""
    import torch

    train = optimizer is not None
    model.train(train)
    total, norm = 0.0, 0.0
    scores = np.zeros(w.loss_mask.shape, np.float32)
    with torch.set_grad_enabled(train):
        for idx in _batches(len(w.labels), batch, rng):
            x = torch.from_numpy(w.x[idx]).to(device)
            n = torch.from_numpy(w.lengths[idx]).to(device)
            y = torch.from_numpy(w.labels[idx]).to(device)[:, None].expand(-1, x.shape[1])
            if train and smoothing > 0:
                y = y * (1 - smoothing) + 0.5 * smoothing                       # y' = y (1 - eps) + eps / 2
            m = torch.from_numpy(w.loss_mask[idx] * weights[idx, None]).to(device)
            logits, _ = model(x, n)
            # L = sum_i m_i BCE(sigma(l_i), y_i) / sum_i m_i   (class-balanced, scored frames only)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * m).sum() \
                / m.sum().clamp(min=1e-9)
            if train:
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
            total += float(loss.detach()) * float(m.sum())
            norm += float(m.sum())
            scores[idx] = torch.sigmoid(logits).detach().cpu().numpy()
    return total / max(norm, 1e-9), scores


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor at optimiser ``step``: linear warm-up over ``warmup`` steps, then cosine
    decay to 0 at ``total``: f = min(1, (step + 1) / warmup) * (1 + cos(pi * min(step / total, 1))) / 2."""
    return min(1.0, (step + 1) / max(warmup, 1)) * 0.5 * (1.0 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


def _seed_range(data: TrackSequences) -> str:
    """The seeds of a split as ascending ranges, ``0-17,30-41`` (the form ``--train-seeds`` takes)."""
    seeds = np.unique(data.seeds)
    breaks = np.flatnonzero(np.diff(seeds) != 1)                     # a new range starts after each gap
    lows, highs = seeds[np.r_[0, breaks + 1]], seeds[np.r_[breaks, len(seeds) - 1]]
    return ",".join(f"{lo}-{hi}" if hi > lo else f"{lo}" for lo, hi in zip(lows, highs))


def _class_weights(labels: np.ndarray) -> np.ndarray:
    """w = 0.5 / frequency of the window's label, so both classes weigh the same."""
    pos = max(labels.mean(), 1e-6)
    return np.where(labels > 0.5, 0.5 / pos, 0.5 / max(1 - pos, 1e-6)).astype(np.float32)


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss and validation metric curves as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train")
    a.plot(ep, [h["val_loss"] for h in history], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("class-balanced BCE"), a.legend(), a.set_title("loss")
    for key in ("val_precision", "val_recall", "val_f1"):
        b.plot(ep, [h[key] for h in history], label=key[4:])
    b.set_xlabel("epoch"), b.set_ylim(0.5, 1.0), b.legend()
    b.set_title("validation per track (sticky keep, best-F1 threshold)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_model_card(path: Path, weights: Path, n_params: int, summary: dict) -> None:
    """MODEL_CARD.md beside the weights: data, size, metrics, command."""
    data = summary["data"]
    aggregates = [k[len("running_"):] for k in ("running_mean", "running_max") if summary["config"].get(k)]
    lines = [
        "# Persistence transformer — model card", "",
        "Scores every 2D track, at every frame of its life, as a real persistent object or a transient "
        "nuisance (reflection, glare, false positive) from its per-frame history rows.", "",
        "## Model",
        f"- `{weights.name}`: {weights.stat().st_size / 1e6:.2f} MB, {n_params} parameters "
        f"(causal transformer encoder, {summary['config']['n_layers']} layers, d_model {summary['config']['d_model']}, "
        f"{summary['config']['n_heads']} heads; causal attention pooling whose weights are returned).",
        f"- Input: {len(FEATURES)} features per frame: {', '.join(FEATURES)}"
        + (f"; each frame also gets the causal running {' and '.join(aggregates)} of the standardised rows up "
           "to it" if aggregates else "") + ".",
        f"- Window: the newest {WINDOW} frames of the track (the filter's `history_len`).",
        f"- `{weights.with_suffix('.onnx').name}` (`make export-persistence`, run by `make train-persistence`): the "
        "same model exported to ONNX with its thresholds; the filter's CPU path (ONNX Runtime, no torch), "
        "checked against this checkpoint by `tools/export_persistence`.",
        f"- Keep threshold {summary['keep_threshold']:.3f}, release threshold {summary['release_threshold']:.3f} "
        "(hysteresis), chosen on the validation seeds.", "",
        "## Data (simulated; ground truth used for labels only)",
        f"- Train seeds {data['train_seeds']} ({data['train_tracks']} tracks, {data['train_real']} real), "
        f"validation seeds {data['val_seeds']} ({data['val_tracks']} tracks, {data['val_real']} real); every "
        "scenario, detector presets `realistic` and `hard`, the shipped world model.",
        f"- Held out of training entirely: seeds >= 1000 and the nuisance setting `{HELD_OUT_NUISANCE_NAME}` "
        f"(`{HELD_OUT_NUISANCE[0]}` with {HELD_OUT_NUISANCE[1]}).",
        "- Label: a track is real when >= 50% of its detection-backed frames match a real object.", "",
        "## Training",
        f"- Best epoch {summary['best_epoch']} of {summary['epochs_run']} (early stopping, patience "
        f"{summary['patience']}), {summary['train_seconds']:.0f} s on {summary['device']} "
        f"({summary['threads']} thread(s)), seed {summary['seed']}.",
        f"- Validation, per track (kept once any frame reaches the threshold): precision "
        f"{summary['val']['precision']:.4f}, recall {summary['val']['recall']:.4f}, F1 {summary['val']['f1']:.4f}.",
        "- Curves: `training_curves.png`. Held-out figures: `make eval-persistence` (`out/eval/persistence.json`).",
        "",
        "## Reproduce", "```", *([summary["data_command"]] if summary.get("data_command") else []),
        summary["command"], "```", "",
        "## Limits",
        "- Trained on the simulator only; retrain (or at least re-choose the thresholds) for a real detector.",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("out/persistence/data"))
    parser.add_argument("--weights", type=Path, default=Path("models/persistence/persistence_transformer.pt"))
    parser.add_argument("--out", type=Path, default=Path("out/persistence/train"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--stride", type=int, default=16, help="stride of the sliding windows (frames)")
    parser.add_argument("--hysteresis", type=float, default=0.1, help="keep - release threshold")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--running-mean", action="store_true", help="feed the causal running mean of the rows too")
    parser.add_argument("--running-max", action="store_true", help="feed the causal running maximum of the rows too")
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--all-frames", action="store_true",
                        help="train every frame of the sliding windows, not only their last")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="eps: targets y (1 - eps) + eps / 2")
    parser.add_argument("--schedule", default="constant", choices=("constant", "cosine"),
                        help="learning rate: constant, or one warm-up epoch then cosine decay to 0 over --epochs")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="validate and keep an exponential moving average of the weights with this decay "
                             "per step (0: the weights themselves)")
    parser.add_argument("--select", default="loss", choices=("loss", "f1"),
                        help="early stopping and best epoch on the validation loss or the validation per-track F1")
    args = parser.parse_args(argv)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    from object_permanence.core.persistence.model import (
        PersistenceTransformer,
        TransformerConfig,
        count_parameters,
        save_checkpoint,
    )
    from object_permanence.core.persistence.transformer_filter import resolve_device

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    device = resolve_device(args.device)
    train, val = (TrackSequences.load(args.data / f"{s}.npz") for s in ("train", "val"))
    tw, vw = make_windows(train, WINDOW, args.stride, args.all_frames), make_windows(val, WINDOW, args.stride)
    model = PersistenceTransformer(TransformerConfig(
        n_features=len(FEATURES), d_model=args.d_model, n_heads=args.heads, n_layers=args.layers, d_ff=args.d_ff,
        max_len=WINDOW, dropout=args.dropout, running_mean=args.running_mean,
        running_max=args.running_max)).to(device)
    model.set_normalisation(train.features.mean(0), train.features.std(0))
    n_params = count_parameters(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = None
    if args.schedule == "cosine":
        per_epoch = -(-len(tw.labels) // args.batch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
            cosine_with_warmup, warmup=per_epoch, total=per_epoch * args.epochs))
    # theta_ema <- d theta_ema + (1 - d) theta after every step (variance of the kept weights down)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema)) if args.ema > 0 else None
    rng = np.random.default_rng(args.seed)
    t_weights, v_weights = _class_weights(tw.labels), _class_weights(vw.labels)
    history, best, best_state, stale = [], float("inf"), None, 0
    start = time.perf_counter()
    bar = tqdm(range(1, args.epochs + 1), desc="train persistence", unit="epoch")
    for epoch in bar:
        train_loss, _ = _epoch(model, tw, t_weights, device, optimizer, rng, args.batch, args.label_smoothing,
                               scheduler, ema)
        judged = model if ema is None else ema.module  # the weights validated and kept
        val_loss, scores = _epoch(judged, vw, v_weights, device, batch=1024)
        chosen = choose_threshold(prefix_scores_to_track(scores, vw, len(val)), val.labels)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_precision": chosen["precision"], "val_recall": chosen["recall"], "val_f1": chosen["f1"],
                        "val_threshold": chosen["threshold"]})
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", f1=f"{chosen['f1']:.4f}")
        key = val_loss if args.select == "loss" else -chosen["f1"] + 1e-3 * val_loss  # smaller is better
        if key < best - 1e-5:
            best, stale = key, 0
            best_state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
            best_row = history[-1]
        else:
            stale += 1
            if stale >= args.patience:
                break
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    keep = best_row["val_threshold"]
    release = max(0.0, keep - args.hysteresis)
    made = args.data / "summary.json"  # written by make_persistence_data: how the data was generated
    summary = {
        "command": "python -m object_permanence.tools.train_persistence " + " ".join(argv or sys.argv[1:]),
        "data_command": json.loads(made.read_text()).get("command") if made.is_file() else None,
        "seed": args.seed, "device": device, "threads": args.threads, "parameters": n_params,
        "config": model.config.as_dict(), "epochs_run": len(history), "best_epoch": best_row["epoch"],
        "patience": args.patience, "train_seconds": seconds, "keep_threshold": keep, "release_threshold": release,
        "val": {"precision": best_row["val_precision"], "recall": best_row["val_recall"], "f1": best_row["val_f1"]},
        "data": {"train_seeds": _seed_range(train), "train_tracks": len(train),
                 "train_real": int(train.labels.sum()), "val_seeds": _seed_range(val),
                 "val_tracks": len(val), "val_real": int(val.labels.sum())},
    }
    args.weights.parent.mkdir(parents=True, exist_ok=True)
    model.to("cpu")
    save_checkpoint(args.weights, model, {"features": list(FEATURES), "keep_threshold": keep,
                                          "release_threshold": release, "val": summary["val"], "seed": args.seed})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "history.json").write_text(json.dumps({"summary": summary, "history": history}, indent=2) + "\n")
    plot_curves(history, args.weights.parent / "training_curves.png")
    write_model_card(args.weights.parent / "MODEL_CARD.md", args.weights, n_params, summary)
    print(f"best epoch {best_row['epoch']}/{len(history)}: val loss {best_row['val_loss']:.4f}, "
          f"precision {best_row['val_precision']:.4f}"
          f" recall {best_row['val_recall']:.4f} at threshold {keep:.3f}; {n_params} parameters; {seconds:.0f} s; "
          f"written {args.weights} ({args.weights.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
