"""Train the simulated-world YOLO detector from its model YAML (no pretrained weights, nothing downloaded).

    python -m object_permanence.tools.train_detector --data out/detector/data/data.yaml

Trains an Ultralytics detector from ``--model`` (a YAML: ``models/detector/sim_yolo.yaml`` or
``yolov8n.yaml``) on the data set of :mod:`make_detector_data`, then ships

* ``models/detector/sim_yolo.pt``: the best epoch (by validation fitness), EMA weights, optimizer
  stripped, FP16 (Ultralytics' ``strip_optimizer``); at most 6 MB;
* ``models/detector/training_curves.png``: losses and validation mAP per epoch, drawn here from
  ``results.csv`` with matplotlib (Ultralytics' own plots need a font download);
* ``models/detector/MODEL_CARD.md``: data, image size, epochs, parameters, mAP50 / mAP50-95 on the
  held-out test split (seeds >= 1000), train time and machine, the command.

A second stage may go on from a first stage's weights (``--model <run>/weights/best.pt``, e.g.
without mosaic at a low learning rate); the card then reports both stages' time and commands
(``make train-detector`` runs the two stages that produced the shipped weights).

Image size 320: the sim images are 640x480 and the objects 50-110 px tall, so at half resolution
they are still 25-55 px — well inside what the stride-8/16/32 heads resolve — while a training
step costs a quarter of 640's on this CPU, and a 320 stereo pair is what the 30 ms budget allows.

Offline by construction (:func:`offline_ultralytics`): ``YOLO_OFFLINE`` (no online checks, no
events), ``YOLO_AUTOINSTALL=false`` (no pip), a private settings directory with ``sync`` off,
``plots=False`` and ``amp=False`` (no font, no AMP-check weights), the data set's font check
answered locally, and a socket audit hook that records every attempt to reach a non-loopback
host; the model card states how many there were (0 expected).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np

#: Where the shipped weights, card and curves go: the source tree's models/ (run from the repository
#: root, as the make targets do; a path derived from this file would point into install/).
MODEL_DIR = Path("models") / "detector"
MAX_WEIGHTS_BYTES = 6 * 1024 * 1024
_LOCAL_HOSTS = frozenset({"", "localhost", "::1", "0.0.0.0", "None"})
_NETWORK_ATTEMPTS: list[str] = []


def _audit(event: str, args: tuple) -> None:
    """Record socket connections and name look-ups aimed anywhere but loopback."""
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else str(address)
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    host = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
    if host not in _LOCAL_HOSTS and not host.startswith(("127.", "/", "\0")):  # loopback and Unix sockets pass
        _NETWORK_ATTEMPTS.append(f"{event} {host}")


def offline_ultralytics(config_dir: Path, threads: int = 1):
    """Import and return the ``ultralytics`` module set up so that it never reaches the network.

    Must run before anything else imports ultralytics (its settings are read at import). Sets the
    environment (offline, no auto-install), points its settings to ``config_dir`` (a private
    settings file with sync and integrations off), answers its font look-up from matplotlib's
    bundled DejaVu font, sets torch's CPU threads to ``threads`` (Ultralytics would pin CPU
    training to ``cpu_count - 1``) and installs the socket audit hook (:func:`network_attempts`).
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false", "YOLO_CONFIG_DIR": str(config_dir),
                       "OMP_NUM_THREADS": str(threads)})
    if not getattr(offline_ultralytics, "hooked", False):
        sys.addaudithook(_audit)
        offline_ultralytics.hooked = True
    import matplotlib
    import ultralytics
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.checks as checks
    import ultralytics.utils.torch_utils as torch_utils

    ultralytics.settings.update({"sync": False, "clearml": False, "comet": False, "dvc": False, "mlflow": False,
                                 "raytune": False, "tensorboard": False, "wandb": False, "vscode_msg": False,
                                 "openvino_msg": False, "datasets_dir": str(config_dir / "datasets")})
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"

    def local_font(name: str = "Arial.ttf") -> Path:
        """Ultralytics' check_font without the download: a bundled font stands in for Arial."""
        return font

    data_utils.check_font = checks.check_font = local_font
    torch_utils.NUM_THREADS = threads
    return ultralytics


def network_attempts() -> list[str]:
    """Non-loopback socket connections and look-ups seen since :func:`offline_ultralytics` (a copy)."""
    return list(_NETWORK_ATTEMPTS)


def plot_curves(results_csv: Path | Sequence[Path], target: Path) -> None:
    """Draw train/val losses and val precision, recall, mAP50, mAP50-95 per epoch into ``target`` (PNG).

    results_csv: one run's ``results.csv``, or the runs of successive stages in order (their epochs
    are numbered on, with a dotted line where a stage starts).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [results_csv] if isinstance(results_csv, (str, Path)) else list(results_csv)
    stages = [np.atleast_1d(np.genfromtxt(p, delimiter=",", names=True, dtype=float, encoding="utf-8"))
              for p in paths]
    names = [n for n in stages[0].dtype.names if all(n in t.dtype.names for t in stages)]
    table = np.concatenate([t[names] for t in stages])
    starts = np.cumsum([0] + [len(t) for t in stages])[:-1]  # row where each stage begins
    epoch = np.arange(1, len(table) + 1, dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, kind in zip(axes[:2], ("box_loss", "cls_loss")):
        for split in ("train", "val"):
            column = next((n for n in names if n.startswith(split) and n.endswith(kind)), None)
            if column is not None:
                ax.plot(epoch, table[column], marker="o", label=split)
        ax.set_title(kind.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.legend()
    for column, label in (("metricsprecisionB", "precision"), ("metricsrecallB", "recall"),
                          ("metricsmAP50B", "mAP50"), ("metricsmAP5095B", "mAP50-95")):
        if column in names:
            axes[2].plot(epoch, table[column], marker="o", label=label)
    for ax in axes:
        for start in starts[1:]:
            ax.axvline(start + 0.5, color="grey", linestyle=":")
    axes[2].set_title("validation (seeds 900-999)")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylim(0.0, 1.0)
    axes[2].legend()
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)


def _cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's answer where that is missing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_model_card(target: Path, info: dict) -> None:
    """Write the Markdown model card from the facts gathered by :func:`main`."""
    summary = info["data_summary"]
    split_rows = "\n".join(
        f"| {split} | {s['seeds']} | {s['images']} | {sum(s['labels_per_class'].values())} | "
        f"{', '.join(f'{k} {v}' for k, v in s['distractors'].items())} |"
        for split, s in summary["splits"].items())
    test = info["test"]
    deployed = test["deployed"]
    per_class = "\n".join(f"| {name} | {v['map50']:.3f} | {v['map50_95']:.3f} |"
                          for name, v in test.get("per_class", {}).items())
    origin = (f"continued from `{info['model_yaml']}` (the weights of an earlier run of this tool, itself trained "
              f"from `models/detector/sim_yolo.yaml`; the train time below is this stage's only)"
              if str(info["model_yaml"]).endswith(".pt") else
              f"`{info['model_yaml']}` (YOLOv8 layout, from its YAML: random initialisation, no pretrained weights)")
    prev = info.get("previous")
    limit = (f"time limit {info['time_hours']} h: Ultralytics fits the epoch count and learning-rate schedule to "
             f"it after the first epoch, in place of the {info['epochs']} epochs asked, and stops mid-epoch when it "
             f"is reached" if info["time_hours"] else f"of {info['epochs']} allowed")
    stages = "" if prev is None else (
        f"\n- This is stage 2. Stage 1 (from the YAML): {prev['epochs']} epochs, {prev['minutes']:.1f} min, "
        f"validation mAP50 {prev['map50_val']:.3f} at its end; total train time "
        f"{prev['minutes'] + info['train_minutes']:.1f} min.")
    text = f"""# sim_yolo — a YOLO detector trained on the simulated stereo world

Weights: `models/detector/sim_yolo.pt` ({info['weights_bytes'] / 1e6:.2f} MB, FP16, optimizer stripped).
Classes: {', '.join(f'{i} {n}' for i, n in enumerate(summary['classes']))}.
Licence note: trained with Ultralytics (AGPL-3.0), used here as an optional backend.
Exports: `sim_yolo.onnx` (float32 arithmetic, float16-stored weights) and its int8 quantization `sim_yolo_int8.onnx` (card: `MODEL_CARD_int8.md`), both by `make export-detector`.

## Model
- Architecture: {origin}, {info['params']:,} parameters, {info['gflops']:.2f} GFLOPs at {info['imgsz']}x{info['imgsz']}.
- Input size: {info['imgsz']} (letterboxed; the 640x480 sim images become 320x240). At 320 the
  objects (50-110 px tall at 640) are 25-55 px, well resolved by the stride-8/16/32 heads, and a
  training or inference step costs a quarter of 640's on a CPU.

## Data
Rendered by `make_detector_data` from the simulated world: every scenario ({', '.join(summary['scenarios'])}),
both cameras, every {summary['stride']}th frame of each run, photo textures and backgrounds. Splits by
seed; the test split is held out (seeds >= 1000, never seen in training or model selection).
Labels: the **visible** box of each real object with visibility >= {summary['label_policy']['min_visibility']}
and both sides >= {summary['label_policy']['min_side_px']} px; reflections, glare and false positives are
unlabelled distractors.

| split | seeds | images | labels | distractors in view |
|---|---|---|---|---|
{split_rows}

## Training
- {info['epochs_run']} epochs run ({limit}; patience {info['patience']}), best epoch {info['best_epoch']};
  batch {info['batch']}, optimizer {info['optimizer']}, seed {info['seed']}, deterministic, FP32 (no AMP),
  mosaic off for the last {info['close_mosaic']} epochs; train fraction {info['fraction']}.
- Train time: {info['train_minutes']:.1f} min on {info['machine']} ({info['threads']} torch threads,
  device {info['device']}).{stages}
- Network attempts during training and evaluation: {info['network_attempts']}.
- Curves: `models/detector/training_curves.png`.

## Held-out test (seeds {summary['splits'].get('test', {}).get('seeds', '>= 1000')}, imgsz {info['imgsz']})
| metric | value |
|---|---|
| mAP50 | {test['map50']:.3f} |
| mAP50-95 | {test['map50_95']:.3f} |
| precision | {test['precision']:.3f} |
| recall | {test['recall']:.3f} |
| mAP50, unlabelled objects ignored ({test['ignore']['ignored_objects']} iscrowd regions) | {test['ignore']['map50']:.3f} |
| mAP50-95, same | {test['ignore']['map50_95']:.3f} |
| mAP50 / mAP50-95 with the NMS the detector node runs (IoU {deployed['iou']}, {'class-agnostic' if deployed['agnostic'] else 'per class'}; `config/detector.yaml`) | {deployed['map50']:.3f} / {deployed['map50_95']:.3f} |

mAP50 / mAP50-95: Ultralytics `val` (conf 0.001, NMS IoU 0.7 per class: its convention). The
"ignored" rows: pycocotools, with objects in view that the label policy leaves out as ignore
regions (the CityPersons "reasonable" protocol); firing on reflections, glare or background still
counts as false positive. The last row is the validator with the deployed NMS: one box per object
whatever its class, and a partly hidden object's second box suppressed (what the tracker needs)
cost a little average precision.

| class | mAP50 | mAP50-95 |
|---|---|---|
{per_class}

## Command
```
{(prev['command'] + chr(10)) if prev else ''}{info['command']}
```
Trained on {info['date']}.
"""
    target.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("out/detector/data/data.yaml"))
    parser.add_argument("--model", default=str(MODEL_DIR / "sim_yolo.yaml"),
                        help="model YAML (a path, or an Ultralytics name such as yolov8n.yaml: random initial "
                             "weights), or a .pt of an earlier run of this tool to go on from (fine-tuning)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8,
                        help="images per optimizer step (nbs = batch: no gradient accumulation); 8 gives twice "
                             "the steps of 16 for the same CPU time, which a short run needs")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads. 1 by default: on this shared 2-core machine, with other jobs "
                             "running, 2 OpenMP threads made a training step 2-4x slower than 1 (threads "
                             "spinning at barriers while the other core is taken)")
    parser.add_argument("--close-mosaic", type=int, default=2)
    parser.add_argument("--warmup-epochs", type=float, default=1.0,
                        help="learning-rate warm-up (Ultralytics' 3 would fill a short CPU run)")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the train split to use")
    parser.add_argument("--time-hours", type=float, default=None, help="hard limit on the training time")
    parser.add_argument("--optimizer", default="auto", help="Ultralytics optimizer name (auto: its own choice)")
    parser.add_argument("--lr0", type=float, default=0.01, help="initial learning rate (ignored by optimizer auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="", help="'' picks a CUDA GPU when present, else the CPU")
    parser.add_argument("--runs", type=Path, default=Path("out/detector/runs"))
    parser.add_argument("--name", default="sim_yolo")
    parser.add_argument("--ship", type=Path, default=MODEL_DIR, help="where weights, card and curves go")
    parser.add_argument("--no-ship", action="store_true", help="train only (a pilot): ship nothing")
    parser.add_argument("--previous-run", type=Path, default=None,
                        help="run folder of the stage a .pt --model comes from (the card adds its time and command; "
                             "default: the folder two levels above the .pt, when it holds a run)")
    parser.add_argument("--skip-train", action="store_true",
                        help="ship, plot and evaluate the existing run <runs>/<name> without training")
    args = parser.parse_args(argv)
    for name in ("imgsz", "epochs", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.data.exists():
        parser.error(f"--data {args.data} does not exist; run make_detector_data first")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    ultralytics = offline_ultralytics(args.runs.resolve() / "ultralytics_config", args.threads)
    import torch

    run_dir = (args.runs / args.name).resolve()
    train_seconds = float("nan")
    command = "python -m object_permanence.tools.train_detector " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    if not args.skip_train:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "command.txt").write_text(command + "\n")
        model = ultralytics.YOLO(args.model, task="detect")
        start = time.perf_counter()
        model.train(data=str(args.data.resolve()), imgsz=args.imgsz, epochs=args.epochs, patience=args.patience,
                    batch=args.batch, nbs=args.batch, workers=args.workers, close_mosaic=args.close_mosaic,
                    warmup_epochs=args.warmup_epochs, optimizer=args.optimizer, lr0=args.lr0,
                    fraction=args.fraction, time=args.time_hours, seed=args.seed, deterministic=True,
                    device=args.device or None, pretrained=str(args.model).endswith(".pt"), amp=False, plots=False,
                    cache="ram",
                    project=str(args.runs.resolve()), name=args.name, exist_ok=True, verbose=True)
        train_seconds = time.perf_counter() - start
        (run_dir / "train_seconds.txt").write_text(f"{train_seconds:.1f}\n")
        (run_dir / "threads.txt").write_text(f"{args.threads}\n")
    elif (run_dir / "train_seconds.txt").exists():
        train_seconds = float((run_dir / "train_seconds.txt").read_text())
    threads = int((run_dir / "threads.txt").read_text()) if (run_dir / "threads.txt").exists() else args.threads
    if args.no_ship:
        return 0
    best = run_dir / "weights" / "best.pt"
    if not best.exists():
        raise FileNotFoundError(f"train_detector: no best weights at {best}")
    args.ship.mkdir(parents=True, exist_ok=True)
    weights = args.ship / "sim_yolo.pt"
    shutil.copyfile(best, weights)
    if weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise RuntimeError(f"train_detector: {weights} is {weights.stat().st_size} bytes, over the 6 MB limit")
    previous = args.previous_run or (Path(args.model).resolve().parents[1] if args.model.endswith(".pt") else None)
    if previous is not None and not (previous / "train_seconds.txt").exists():
        previous = None
    plot_curves([previous / "results.csv", run_dir / "results.csv"] if previous else run_dir / "results.csv",
                args.ship / "training_curves.png")

    from object_permanence.core.parameters import detector_nms
    from object_permanence.tools.eval_detector import coco_map, evaluate_map

    test = evaluate_map(weights, args.data, imgsz=args.imgsz, split="test")
    test["ignore"] = coco_map(weights, args.data.parent, imgsz=args.imgsz, split="test", ignore=True)
    nms = detector_nms(Path("config"))
    test["deployed"] = {**evaluate_map(weights, args.data, imgsz=args.imgsz, split="test", **nms), **nms}
    shipped = ultralytics.YOLO(str(weights))
    params = sum(p.numel() for p in shipped.model.parameters())
    from ultralytics.utils.torch_utils import get_flops

    gflops = float(get_flops(shipped.model, args.imgsz))  # GFLOPs of one imgsz x imgsz forward pass
    table = np.atleast_1d(np.genfromtxt(run_dir / "results.csv", delimiter=",", names=True, encoding="utf-8"))
    fitness = 0.1 * table["metricsmAP50B"] + 0.9 * table["metricsmAP5095B"]  # Ultralytics' fitness
    train_args = _read_args(run_dir)
    info = {
        "model_yaml": train_args.get("model", args.model), "params": int(params),
        "gflops": gflops,
        "imgsz": args.imgsz, "epochs": int(train_args.get("epochs", args.epochs)),
        "patience": int(train_args.get("patience", args.patience)), "epochs_run": int(table["epoch"].max()),
        "best_epoch": int(table["epoch"][int(np.argmax(fitness))]), "batch": int(train_args.get("batch", args.batch)),
        "optimizer": train_args.get("optimizer", "auto"), "time_hours": train_args.get("time"),
        "seed": int(train_args.get("seed", args.seed)),
        "close_mosaic": int(train_args.get("close_mosaic", args.close_mosaic)),
        "fraction": float(train_args.get("fraction", args.fraction)),
        "train_minutes": train_seconds / 60.0,
        "machine": (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else f"{_cpu_name()}, {os.cpu_count()} cores"),
        "threads": threads, "device": "cuda" if torch.cuda.is_available() else "cpu",
        "network_attempts": len(network_attempts()), "test": test,
        "data_summary": json.loads((args.data.parent / "summary.json").read_text()),
        "weights_bytes": weights.stat().st_size, "date": date.today().isoformat(),
        "command": ((run_dir / "command.txt").read_text().strip() + "\n" if (run_dir / "command.txt").exists()
                    else "") + (command if args.skip_train else ""),
    }
    if previous is not None:
        stage = np.atleast_1d(np.genfromtxt(previous / "results.csv", delimiter=",", names=True, encoding="utf-8"))
        info["previous"] = {"minutes": float((previous / "train_seconds.txt").read_text()) / 60.0,
                            "epochs": int(stage["epoch"].max()), "map50_val": float(stage["metricsmAP50B"][-1]),
                            "command": (previous / "command.txt").read_text().strip()
                            if (previous / "command.txt").exists() else "(not recorded)"}
    write_model_card(args.ship / "MODEL_CARD.md", info)
    print(json.dumps({"weights": str(weights), "bytes": info["weights_bytes"], "map50": test["map50"],
                      "map50_95": test["map50_95"], "train_minutes": info["train_minutes"],
                      "network_attempts": network_attempts()}))
    return 0


def _read_args(run_dir: Path) -> dict:
    """The run's ``args.yaml`` (what Ultralytics trained with), {} when missing."""
    import yaml

    path = run_dir / "args.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


if __name__ == "__main__":
    sys.exit(main())
