"""Fit the gradient-boosting persistence model on the transformer's training data and ship it.

    python -m object_permanence.tools.train_persistence_boosting

Reads ``<data>/train.npz`` and ``<data>/val.npz`` (``make_persistence_data``, the same tracks the
transformer is trained on), fits scikit-learn's histogram gradient boosting on the summaries of the
training windows and picks its keep threshold by per-track F1 on the validation tracks
(:func:`~object_permanence.core.persistence.classical.fit_persistence_boosting`, the function
``eval_persistence`` fits its boosting row with, same seed: the shipped model is the one that
table measures). Writes ``<weights>`` (default
``models/persistence/persistence_boosting.joblib``) and prints the validation figures. The
``persistence_filter`` node runs it with ``model: gradient_boosting``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from object_permanence.core.persistence.classical import (
    BOOSTING_NAME,
    BoostingTraining,
    fit_persistence_boosting,
    save_boosting,
)
from object_permanence.core.persistence.dataset import TrackSequences
from object_permanence.core.persistence.history import HISTORY_LEN


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("out/persistence/data"))
    parser.add_argument("--weights", type=Path, default=Path("models/persistence") / BOOSTING_NAME)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        train, val = (TrackSequences.load(args.data / f"{s}.npz") for s in ("train", "val"))
    except (OSError, ValueError) as e:
        print(f"cannot read the training data in {args.data}: {e} (make_persistence_data writes it)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    model, choice = fit_persistence_boosting(train, val, HISTORY_LEN, BoostingTraining(seed=args.seed))
    seconds = time.perf_counter() - start
    info = {"train_tracks": len(train), "val_tracks": len(val), "window": HISTORY_LEN, "seed": args.seed,
            "fit_seconds": round(seconds, 1), "validation": {k: float(v) for k, v in choice.items()}}
    save_boosting(model, args.weights, info)
    print(json.dumps({"weights": str(args.weights), "bytes": args.weights.stat().st_size, **info}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
