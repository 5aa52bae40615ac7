"""What the ONNX export tools of the learned models share (``export_persistence``, ``export_reid``):
their command line and the end of their check against the checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


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
