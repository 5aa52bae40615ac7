"""Export the persistence transformer checkpoint to ONNX for the filter's torch-free CPU path, and
check that the export scores as the checkpoint does.

    python -m object_permanence.tools.export_persistence \\
        --weights models/persistence/persistence_transformer.pt \\
        --out models/persistence/persistence_transformer.onnx      # the shipped file

The export (:func:`model.export_onnx`) carries the checkpoint's thresholds and feature columns.
The check scores ``--histories`` histories of every length from 1 to twice the model's
``max_len`` (longer ones are cut to their newest ``max_len`` rows, as the filter does) through
both (:class:`transformer_filter.TransformerPersistence` on the ``.pt`` and on the ``.onnx``), rows
drawn from a fixed seed around the checkpoint's feature normalisation; it prints the largest score
and pooling-weight differences and fails (exit 1) beyond ``--tolerance``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from object_permanence.tools.export_check import export_parser, finish_check, load_for_export


def check_histories(mean: np.ndarray, std: np.ndarray, count: int, max_len: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` float32 histories of lengths cycling through 1 .. 2 * max_len, each row drawn around
    the training rows' per-feature mean and spread (``mean`` + ``std`` * N(0, 1))."""
    rng = np.random.default_rng(seed)
    lengths = 1 + np.arange(count) % (2 * max_len)
    return [(mean + std * rng.standard_normal((n, mean.size))).astype(np.float32) for n in lengths]


def compare(weights: Path, onnx_path: Path, histories: list[np.ndarray]) -> dict[str, float]:
    """Largest |checkpoint - export| of the scores and of the pooling weights on ``histories``."""
    from object_permanence.core.persistence.transformer_filter import TransformerPersistence

    torch_scores, torch_weights = TransformerPersistence(weights, "cpu").score(histories)
    onnx_scores, onnx_weights = TransformerPersistence(onnx_path, "cpu").score(histories)
    return {"score": float(np.abs(torch_scores - onnx_scores).max()),
            "attention": float(max(np.abs(a - b).max() for a, b in zip(torch_weights, onnx_weights)))}


def _load_checkpoint(path: Path):
    """The persistence checkpoint (torch is imported only once the file is known to be there)."""
    from object_permanence.core.persistence.model import load_checkpoint

    return load_checkpoint(path)


def main(argv: list[str] | None = None) -> int:
    parser = export_parser(__doc__, "models/persistence/persistence_transformer.pt", "histories", 256,
                           "histories of the check")
    args = parser.parse_args(argv)
    model, extra, out = load_for_export(parser, args, _load_checkpoint, "train-persistence")
    import torch

    from object_permanence.core.persistence.model import export_onnx
    export_onnx(model, out, extra["keep_threshold"], extra["release_threshold"], tuple(extra["features"]))
    print(f"exported {args.weights} -> {out} ({out.stat().st_size / 1024:.0f} KiB), rows (B, {model.config.max_len}, "
          f"{model.config.n_features}), thresholds {extra['keep_threshold']:.3f} / {extra['release_threshold']:.3f}")
    if args.histories <= 0:
        return 0
    torch.set_num_threads(1)
    histories = check_histories(model.mean.numpy(), model.std.numpy(), args.histories, model.config.max_len)
    diff = compare(args.weights, out, histories)
    return finish_check(args, out, max(diff.values()), {"histories": len(histories), "max_abs_diff": diff},
                        f"check on {len(histories)} histories of 1-{2 * model.config.max_len} rows: largest difference "
                        f"of the scores {diff['score']:.1e}, of the pooling weights {diff['attention']:.1e}")


if __name__ == "__main__":
    sys.exit(main())
