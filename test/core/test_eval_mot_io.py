"""MOTChallenge files of the evaluation (``core.eval.mot_io``): detections with classes, tracks,
``seqinfo.ini``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.eval.mot_io import (
    MotFormatError,
    MotTrackRow,
    SeqInfo,
    cxcywh_to_xywh,
    read_mot_array,
    read_mot_detections,
    read_seqinfo,
    write_mot_detections,
    write_mot_tracks,
    write_seqinfo,
    xywh_to_cxcywh,
)
from object_permanence.core.types import Detection


def _det(cx: float, cy: float, w: float, h: float, score: float, cls: int) -> Detection:
    return Detection(box=np.array([cx, cy, w, h]), score=score, class_id=cls)


def test_detections_round_trip_with_classes_frames_and_order(tmp_path: Path) -> None:
    frames = {1: [_det(50.0, 60.0, 20.0, 40.0, 0.9, 2), _det(200.125, 100.0, 30.0, 30.0, 0.55555, 0)],
              2: [], 4: [_det(10.0, 10.0, 4.0, 6.0, 0.3, 1)]}
    path = tmp_path / "det.txt"
    write_mot_detections(path, frames)
    assert path.read_text().splitlines()[0] == "1,-1,40.00,40.00,20.00,40.00,0.9000,2,-1,-1"
    again = read_mot_detections(path, with_class=True)
    assert sorted(again) == [1, 4]  # an empty frame writes no line
    for frame in (1, 4):
        assert [d.class_id for d in again[frame]] == [d.class_id for d in frames[frame]]
        np.testing.assert_allclose([d.box for d in again[frame]], [d.box for d in frames[frame]], atol=0.011)
        np.testing.assert_allclose([d.score for d in again[frame]], [d.score for d in frames[frame]], atol=5e-5)
    assert {d.class_id for d in read_mot_detections(path)[1]} == {0}  # classes only when asked
    assert [len(v) for v in read_mot_detections(path, min_score=0.5).values()] == [2]
    with pytest.raises(ValueError, match="frame"):
        write_mot_detections(tmp_path / "bad.txt", {0: frames[1]})


def test_box_conversions_are_inverse() -> None:
    boxes = np.array([[10.0, 20.0, 4.0, 8.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(cxcywh_to_xywh(boxes), [[8.0, 16.0, 4.0, 8.0], [-0.5, -0.5, 1.0, 1.0]])
    np.testing.assert_allclose(xywh_to_cxcywh(cxcywh_to_xywh(boxes)), boxes)


def test_exact_tracks_read_back_as_the_same_doubles(tmp_path: Path) -> None:
    rows = [MotTrackRow(3, 7, 1.0 / 3.0, 2.0 ** 0.5, 10.1, 20.2, 0.123456789)]
    write_mot_tracks(tmp_path / "exact.txt", rows, exact=True)
    write_mot_tracks(tmp_path / "rounded.txt", rows)
    exact = read_mot_array(tmp_path / "exact.txt", 10)[0]
    assert exact.tolist()[:7] == [3, 7, 1.0 / 3.0, 2.0 ** 0.5, 10.1, 20.2, 0.123456789]
    assert (tmp_path / "rounded.txt").read_text() == "3,7,0.33,1.41,10.10,20.20,0.1235,-1,-1,-1\n"


def test_read_mot_array_pads_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("1,2,3,4,5,6,7\n\n2,2,3,4,5,6,7,8,9,10,11\n")
    np.testing.assert_array_equal(read_mot_array(path, 8), [[1, 2, 3, 4, 5, 6, 7, -1], [2, 2, 3, 4, 5, 6, 7, 8]])
    with pytest.raises(ValueError, match="n_columns"):
        read_mot_array(path, 6)
    path.write_text("1,2,3,4,5,6,7,x\n")
    assert read_mot_array(path).shape == (1, 7)  # a column nobody asked for is not parsed
    with pytest.raises(MotFormatError, match="a.txt:1"):
        read_mot_array(path, 8)


def test_seqinfo(tmp_path: Path) -> None:
    path = tmp_path / "seqinfo.ini"
    path.write_text("[Sequence]\nname=TUD\nimDir=img1\nframeRate=25\nseqLength=71\nimWidth=640\nimHeight=480\n")
    assert read_seqinfo(path) == SeqInfo(640, 480, 25.0, 71)
    path.write_text("[Sequence]\nframeRate=30\nimWidth=10\nimHeight=5\n")
    assert read_seqinfo(path) == SeqInfo(10, 5, 30.0, None)
    for text, name in [("[Other]\nimWidth=1\n", "Sequence"), ("[Sequence]\nimWidth=640\nframeRate=25\n", "imHeight"),
                       ("[Sequence]\nimWidth=640\nimHeight=48x\nframeRate=25\n", "imHeight"),
                       ("[Sequence]\nimWidth=640\nimHeight=480\nframeRate=0\n", "frameRate"),
                       ("no section at all\n", "ini")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=name):
            read_seqinfo(path)


def test_written_seqinfo_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "seqinfo.ini"
    write_seqinfo(path, "seq-left", 12.5, 40, 320, 240, im_ext=".png")
    assert read_seqinfo(path) == SeqInfo(320, 240, 12.5, 40)
    text = path.read_text(encoding="utf-8")
    assert "name=seq-left\n" in text and "imExt=.png\n" in text and "imDir=img1\n" in text
    write_seqinfo(path, "seq", 30.0, 1, 640, 480)
    assert "frameRate=30\n" in path.read_text(encoding="utf-8") and "imExt=.jpg" in path.read_text(encoding="utf-8")
