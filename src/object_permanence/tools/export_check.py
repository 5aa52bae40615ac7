"""What the ONNX export tools of the learned models share (``export_persistence``, ``export_reid``):
their command line, the loading of the checkpoint and the end of their check against it."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def export_parser(description: str, weights: str, check: str, check_default: int, check_help: str
                  ) -> argparse.ArgumentParser:
    """``--weights`` (default ``weights``), ``--out``, ``--<check>`` (how many inputs the check runs; 0:
    none), ``--tolerance`` and ``--report``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path(weights))
    parser.add_argument("--out", type=Path, default=None, help="default: the checkpoint's name with .onnx")
    parser.add_argument(f"--{check}", type=int, default=check_default, help=f"{check_help} (0: none)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--report", type=Path, default=None, help="also write the check as JSON here")
    return parser


def load_for_export(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    load_checkpoint: Callable[[Path], tuple[Any, Any]], make_target: str) -> tuple[Any, Any, Path]:
    """``(model, extra, out)``: the ``--weights`` checkpoint loaded by ``load_checkpoint`` and the
    export's path (``--out``, else the checkpoint's name with ``.onnx``; its folder made). A missing
    or unreadable checkpoint ends the tool through ``parser.error`` (a missing one names
    ``make_target``, which writes it)."""
    if not args.weights.is_file():
        parser.error(f"--weights {args.weights} not found; run make {make_target} first")
    try:
        model, extra = load_checkpoint(args.weights)
    except ValueError as exc:
        parser.error(str(exc))
    out = args.out or args.weights.with_suffix(".onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    return model, extra, out


def finish_check(args: argparse.Namespace, out: Path, largest: float, facts: dict, summary: str) -> int:
    """Print ``summary`` with the verdict on ``largest`` (the largest |checkpoint - export|), write the
    ``--report`` (``facts`` beside the files and the tolerance) and return the exit status: 1 beyond
    ``--tolerance``."""
    ok = largest <= args.tolerance
    print(f"{summary} ({'within' if ok else 'BEYOND'} {args.tolerance:g})")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"weights": str(args.weights), "out": str(out), **facts,
                                           "tolerance": args.tolerance}, indent=2) + "\n")
    return 0 if ok else 1
