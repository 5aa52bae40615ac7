"""The detector trainer's offline guard and its curves (no training here)."""
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
