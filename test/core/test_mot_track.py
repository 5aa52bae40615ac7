"""Tests of the offline ``mot_track`` tool (MOTChallenge detections in, tracks out)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from object_permanence.tools.mot_track import main, read_mot_detections

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TUD_GT = DATA / "mot" / "TUD-Campus" / "gt.txt"


def _read_rows(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


def _walker(frames) -> str:
    """One 40x80 box moving 10 px/frame to the right in the given frames."""
    return "".join(f"{f},1,{100 + 10 * f},200,40,80,0.9,-1,-1,-1\n" for f in frames)


@pytest.mark.skipif(not TUD_GT.exists(), reason=f"real MOT data missing: {TUD_GT}")
@pytest.mark.filterwarnings("ignore:Operation with tuple is deprecated")  # inside motmetrics.io
def test_idf1_on_tud_campus_with_dropped_detections(tmp_path: Path, capsys) -> None:
    if not hasattr(np, "asfarray"):  # motmetrics 1.4.0 calls np.asfarray, removed in NumPy 2
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)
    mm = pytest.importorskip("motmetrics")
    lines = [line for line in TUD_GT.read_text().splitlines(keepends=True) if line.strip()]
    keep = np.random.default_rng(0).random(len(lines)) >= 0.2  # drop 20% of the boxes
    det_path, out_path = tmp_path / "det.txt", tmp_path / "tracks.txt"
    det_path.write_text("".join(line for line, k in zip(lines, keep) if k))
    assert main([str(det_path), "-o", str(out_path)]) == 0
    gt = mm.io.loadtxt(str(TUD_GT), fmt="mot15-2D")
    hyp = mm.io.loadtxt(str(out_path), fmt="mot15-2D")
    acc = mm.utils.compare_to_groundtruth(gt, hyp, "iou", distth=0.5)
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"], name="tud")
    idf1, mota, switches = (float(summary[k].iloc[0]) for k in ("idf1", "mota", "num_switches"))
    with capsys.disabled():
        print(f"\nTUD-Campus gt with 20% dropped: IDF1 {idf1:.3f}, MOTA {mota:.3f}, "
              f"{switches:.0f} ID switches")
    assert idf1 > 0.7


@pytest.mark.parametrize("content, lineno", [
    ("1,1,10,10,5,5,1\n1,2,10,10,5\n", 2),  # too few fields
    ("\n1,1,10,10,5,5,1\n1,2,a,10,5,5,1\n", 3),  # not a number
    ("0,1,10,10,5,5,1\n", 1),  # frames start at 1
    ("1.5,1,10,10,5,5,1\n", 1),
    ("1,1,10,nan,5,5,1\n", 1),
])
def test_malformed_input_exits_2_with_line_number(tmp_path: Path, capsys, content: str, lineno: int) -> None:
    det_path = tmp_path / "bad.txt"
    det_path.write_text(content)
    assert main([str(det_path), "-o", str(tmp_path / "out.txt")]) == 2
    err = capsys.readouterr().err
    assert f"bad.txt:{lineno}:" in err and "error" in err
    assert not (tmp_path / "out.txt").exists()


def test_missing_file_exits_2(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "nope.txt"), "-o", str(tmp_path / "out.txt")]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_ghosts_written_only_when_asked_and_empty_frames_stepped(tmp_path: Path) -> None:
    det_path = tmp_path / "det.txt"
    det_path.write_text(_walker(range(1, 8)) + _walker(range(12, 16)))
    plain, ghosts = tmp_path / "plain.txt", tmp_path / "ghosts.txt"
    assert main([str(det_path), "-o", str(plain)]) == 0
    assert main([str(det_path), "-o", str(ghosts), "--include-ghosts"]) == 0
    rows, rows_g = _read_rows(plain), _read_rows(ghosts)
    assert set(rows[:, 0]) == set(range(3, 8)) | set(range(12, 16))  # confirmed at the 3rd hit
    assert set(rows_g[:, 0]) == set(range(3, 16))
    assert set(rows[:, 1]) == set(rows_g[:, 1]) == {1}  # the same identity after the gap
    ghost_rows = rows_g[(rows_g[:, 0] >= 8) & (rows_g[:, 0] < 12)]
    expected_x = 100 + 10 * ghost_rows[:, 0]  # top-left x of the true box
    np.testing.assert_allclose(ghost_rows[:, 2], expected_x, atol=3.0)  # the ghost kept moving


def test_config_overrides_and_min_score(tmp_path: Path) -> None:
    det_path = tmp_path / "det.txt"
    det_path.write_text(_walker(range(1, 6)) + "3,2,900,900,30,30,0.1,-1,-1,-1\n")
    out = tmp_path / "out.txt"
    assert main([str(det_path), "-o", str(out), "--min-hits", "1", "--min-score", "0.5"]) == 0
    rows = _read_rows(out)
    assert set(rows[:, 0]) == set(range(1, 6)) and set(rows[:, 1]) == {1}
    np.testing.assert_allclose(rows[0, 2:7], [110.0, 200.0, 40.0, 80.0, 0.9])
    with pytest.raises(SystemExit) as exc:
        main([str(det_path), "-o", str(out), "--iou-gate", "2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main([str(det_path), "-o", str(out), "--fps", "0"])


def test_reader_converts_to_centre_boxes(tmp_path: Path) -> None:
    det_path = tmp_path / "det.txt"
    det_path.write_text("2,7,10,20,30,40,0.5\n\n2,8,0,0,-1,5,0.7,1,1,1\n")
    dets = read_mot_detections(det_path)
    assert list(dets) == [2]
    np.testing.assert_allclose(dets[2][0].box, [25.0, 40.0, 30.0, 40.0])
    assert dets[2][0].score == 0.5 and len(dets[2]) == 2  # a bad size is left to the world model


def test_empty_input_writes_empty_output(tmp_path: Path) -> None:
    det_path = tmp_path / "det.txt"
    det_path.write_text("")
    assert main([str(det_path), "-o", str(tmp_path / "out.txt")]) == 0
    assert (tmp_path / "out.txt").read_text() == ""
