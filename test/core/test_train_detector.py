"""The detector trainer's offline guard, its curves and its model card (no training here)."""
from __future__ import annotations

from object_permanence.tools import train_detector


def test_audit_hook_records_only_non_loopback_hosts() -> None:
    before = len(train_detector.network_attempts())
    train_detector._audit("socket.getaddrinfo", ("github.com", 443, 0, 0, 0, 0))
    train_detector._audit("socket.connect", (None, ("140.82.112.3", 443)))
    train_detector._audit("socket.connect", (None, ("127.0.0.1", 7400)))
    train_detector._audit("socket.getaddrinfo", ("localhost", 80, 0, 0, 0, 0))
    train_detector._audit("open", ("/tmp/x", "r", 0))
    assert train_detector.network_attempts()[before:] == ["socket.getaddrinfo github.com",
                                                          "socket.connect 140.82.112.3"]


def test_curves_are_drawn_from_results_csv(tmp_path) -> None:
    header = ("epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/precision(B),metrics/recall(B),"
              "metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/dfl_loss,lr/pg0,lr/pg1,lr/pg2")
    rows = ["1,60,3.0,2.5,2.0,0.2,0.1,0.1,0.05,2.8,2.4,1.9,0.001,0.001,0.001",
            "2,120,2.0,1.5,1.5,0.6,0.5,0.55,0.3,1.9,1.4,1.4,0.001,0.001,0.001"]
    (tmp_path / "results.csv").write_text("\n".join([header, *rows]) + "\n")
    target = tmp_path / "curves" / "training_curves.png"
    train_detector.plot_curves(tmp_path / "results.csv", target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_of_two_stages_are_drawn_end_to_end(tmp_path) -> None:
    header = "epoch,train/box_loss,train/cls_loss,metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss"
    for name, rows in (("a", ["1,3.0,2.5,0.4,0.3,2.8,2.4", "2,2.0,1.5,0.6,0.5,1.9,1.4"]),
                       ("b", ["1,1.0,0.9,0.8,0.7,1.0,0.9"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.csv").write_text("\n".join([header, *rows]) + "\n")
    target = tmp_path / "curves.png"
    train_detector.plot_curves([tmp_path / "a" / "results.csv", tmp_path / "b" / "results.csv"], target)
    assert target.stat().st_size > 1000


def test_model_card_reports_map_at_the_validators_and_at_the_deployed_nms(tmp_path) -> None:
    from object_permanence.tools.train_detector import write_model_card

    split = {"seeds": "1000-1004", "images": 700, "labels_per_class": {"box": 3, "ball": 4}, "distractors": {"glare": 2}}
    info = {"data_summary": {"splits": {"test": split}, "classes": ["box", "ball"], "scenarios": ["clean"],
                             "stride": 30, "label_policy": {"min_visibility": 0.3, "min_side_px": 6.0}},
            "test": {"map50": 0.97, "map50_95": 0.94, "precision": 0.9, "recall": 0.91,
                     "per_class": {"box": {"map50": 0.96, "map50_95": 0.95}},
                     "ignore": {"ignored_objects": 5, "map50": 0.95, "map50_95": 0.92},
                     "deployed": {"map50": 0.919, "map50_95": 0.895, "iou": 0.5, "agnostic": True}},
            "model_yaml": "sim_yolo.yaml", "params": 1000, "gflops": 1.3, "imgsz": 320, "epochs": 2,
            "time_hours": None, "epochs_run": 2, "patience": 3, "best_epoch": 2, "batch": 8, "optimizer": "SGD",
            "seed": 0, "close_mosaic": 2, "fraction": 1.0, "train_minutes": 1.0, "machine": "cpu", "threads": 2,
            "device": "cpu", "network_attempts": 0, "weights_bytes": 3_000_000, "date": "2026-11-28",
            "command": "python -m object_permanence.tools.train_detector"}
    write_model_card(tmp_path / "card.md", info)
    card = (tmp_path / "card.md").read_text()
    assert "| mAP50 | 0.970 |" in card
    assert "runs (IoU 0.5, class-agnostic; `config/detector.yaml`) | 0.919 / 0.895 |" in card
