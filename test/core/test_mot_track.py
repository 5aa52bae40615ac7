"""Tests of the offline ``mot_track`` tool (MOTChallenge detections in, tracks out)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.eval.metrics import FrameRecord, mot_metrics
from object_permanence.core.eval.mot_io import read_mot_array, xywh_to_cxcywh
from object_permanence.core.eval.tud_campus import ground_truth_frames, load_mot15_ground_truth
from object_permanence.core.types import Track, TrackState
from object_permanence.tools.mot_track import main, parse_image_size, read_mot_detections


def _read_rows(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


@pytest.fixture
def core_defaults(tmp_path: Path) -> Path:
    """A config folder whose world_model.yaml sets nothing: the core defaults (the mechanics
    tests below are written for them; the shipped YAML holds ghosts of < 20 hits unpublished)."""
    folder = tmp_path / "core_defaults"
    folder.mkdir()
    (folder / "world_model.yaml").write_text("world_model:\n  ros__parameters: {}\n")
    return folder


def _walker(frames) -> str:
    """One 40x80 box moving 10 px/frame to the right in the given frames."""
    return "".join(f"{f},1,{100 + 10 * f},200,40,80,0.9,-1,-1,-1\n" for f in frames)


def test_idf1_on_tud_campus_with_dropped_detections(tmp_path: Path, capsys, shared_data: Path) -> None:
    tud_gt = shared_data / "mot" / "TUD-Campus" / "gt.txt"  # a missing data folder fails (conftest)
    lines = [line for line in tud_gt.read_text().splitlines(keepends=True) if line.strip()]
    keep = np.random.default_rng(0).random(len(lines)) >= 0.2  # drop 20% of the boxes
    det_path, out_path = tmp_path / "det.txt", tmp_path / "tracks.txt"
    det_path.write_text("".join(line for line, k in zip(lines, keep) if k))
    assert main([str(det_path), "-o", str(out_path), "--fps", "25", "--image-size", "640x480"]) == 0
    truth = ground_truth_frames(load_mot15_ground_truth(tud_gt))
    rows = read_mot_array(out_path)
    boxes = xywh_to_cxcywh(rows[:, 2:6])
    records = [FrameRecord(index=k, stamp=k / 25.0, gt_left=truth[k], tracks_left=[
        Track(track_id=int(r[1]), state=TrackState.VISIBLE, box=box, velocity=np.zeros(2),
              covariance=np.zeros((4, 4)), score=float(r[6]), class_id=0, class_name="", age=0, hits=0,
              frames_since_seen=0) for r, box in zip(rows, boxes) if r[0] == k + 1]) for k in range(len(truth))]
    m = mot_metrics(records, "left")
    with capsys.disabled():
        print(f"\nTUD-Campus gt with 20% dropped: IDF1 {m['idf1']:.3f}, MOTA {m['mota']:.3f}, "
              f"{m['num_switches']} ID switches")
    assert m["idf1"] > 0.7


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


def test_ghosts_written_only_when_asked_and_empty_frames_stepped(tmp_path: Path, core_defaults: Path) -> None:
    det_path = tmp_path / "det.txt"
    # 10 hits before a 4-frame gap: the ghost lives 10 x ghost_age_per_hit_s (0.5 s, 5 frames at 10 Hz)
    det_path.write_text(_walker(range(1, 11)) + _walker(range(15, 19)))
    plain, ghosts = tmp_path / "plain.txt", tmp_path / "ghosts.txt"
    assert main([str(det_path), "-o", str(plain), "--config-dir", str(core_defaults)]) == 0
    assert main([str(det_path), "-o", str(ghosts), "--include-ghosts", "--config-dir", str(core_defaults)]) == 0
    rows, rows_g = _read_rows(plain), _read_rows(ghosts)
    # confirmed at the 2nd hit: both scored >= fast_confirm_min_score and overlapping (strong evidence)
    assert set(rows[:, 0]) == set(range(2, 11)) | set(range(15, 19))
    assert set(rows_g[:, 0]) == set(range(2, 19))
    assert set(rows[:, 1]) == set(rows_g[:, 1]) == {1}  # the same identity after the gap
    ghost_rows = rows_g[(rows_g[:, 0] >= 11) & (rows_g[:, 0] < 15)]
    expected_x = 100 + 10 * ghost_rows[:, 0]  # top-left x of the true box
    np.testing.assert_allclose(ghost_rows[:, 2], expected_x, atol=3.0)  # the ghost kept moving


def test_weakly_scored_track_is_confirmed_at_the_third_hit(tmp_path: Path) -> None:
    det_path, out = tmp_path / "det.txt", tmp_path / "out.txt"
    det_path.write_text(_walker(range(1, 6)).replace(",0.9,", ",0.45,"))
    assert main([str(det_path), "-o", str(out)]) == 0
    # min_hits: below first_frame_min_score (0.5) no birth on the first frame, below 0.7 none at the 2nd hit
    assert set(_read_rows(out)[:, 0]) == set(range(3, 6))


def test_strong_detections_of_the_first_frame_are_confirmed_at_once(tmp_path: Path) -> None:
    det_path, out = tmp_path / "det.txt", tmp_path / "out.txt"
    det_path.write_text(_walker(range(1, 6)).replace(",0.9,", ",0.6,"))
    assert main([str(det_path), "-o", str(out)]) == 0
    assert set(_read_rows(out)[:, 0]) == set(range(1, 6))  # the shipped first_frame_min_score 0.5


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


def _leaver() -> str:
    """A 40x80 box moving 20 px/frame right, detected in frames 1-6 (centre x 440..540 px); its
    ghost's centre reaches x = 640 (the border of a 640-px image) at frame 11. A lone detection
    in frame 20 keeps the sequence going (it never becomes a track)."""
    return "".join(f"{f},1,{400 + 20 * f},200,40,80,0.9,-1,-1,-1\n" for f in range(1, 7)) + \
        "20,2,100,100,30,30,0.9,-1,-1,-1\n"


def _ghost_centres(path: Path) -> dict[int, float]:
    """Frame -> centre x of the ghost rows (frames after the last detection)."""
    rows = _read_rows(path)
    return {int(r[0]): r[2] + r[4] / 2 for r in rows if r[0] >= 7}


def test_image_size_ends_ghosts_that_leave_the_image(tmp_path: Path, core_defaults: Path) -> None:
    det_path = tmp_path / "det.txt"
    det_path.write_text(_leaver())
    inside, unbounded = tmp_path / "inside.txt", tmp_path / "unbounded.txt"
    # at 30 fps the 6-hit track's ghost would live 0.6 s (18 frames) without the image border
    assert main([str(det_path), "-o", str(inside), "--include-ghosts", "--image-size", "640x480", "--fps", "30", "--config-dir", str(core_defaults)]) == 0
    assert main([str(det_path), "-o", str(unbounded), "--include-ghosts", "--fps", "30", "--config-dir", str(core_defaults)]) == 0
    bounded, free = _ghost_centres(inside), _ghost_centres(unbounded)
    last = max(bounded)
    assert sorted(bounded) == list(range(7, last + 1))  # a ghost from the first missed frame ...
    assert all(x < 640 for x in bounded.values())  # ... published only while its centre is inside
    assert free[last + 1] >= 640  # the next prediction is outside: there it ended
    assert max(free) > last + 1  # without a size it haunts beyond the border until its age ends
    assert {f: free[f] for f in bounded} == pytest.approx(bounded)  # the same ghost up to then
    assert _read_rows(inside)[:, 0].max() == last


def test_seqinfo_beside_the_detections_gives_image_size_and_frame_rate(tmp_path: Path, capsys, core_defaults: Path) -> None:
    seq = tmp_path / "seq"
    (seq / "det").mkdir(parents=True)
    (seq / "det" / "det.txt").write_text(_leaver())
    # at 30 Hz the 6-hit track's ghost lives 0.3 s (9 frames): long enough to reach either border
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=seq\nframeRate=30\nseqLength=20\n"
                                     "imWidth=640\nimHeight=480\n")
    out = tmp_path / "out.txt"
    reference = tmp_path / "reference.txt"
    assert main([str(seq / "det" / "det.txt"), "-o", str(out), "--include-ghosts", "--config-dir", str(core_defaults)]) == 0
    assert "at 30 Hz, 640x480 px" in capsys.readouterr().err
    assert main([str(seq / "det" / "det.txt"), "-o", str(reference), "--include-ghosts", "--fps", "30",
                 "--image-size", "640x480", "--seqinfo", str(tmp_path / "none.ini"), "--config-dir", str(core_defaults)]) == 0
    assert out.read_text() == reference.read_text()
    # an explicit size wins over the file's: a narrower image ends the ghost sooner
    assert main([str(seq / "det" / "det.txt"), "-o", str(out), "--include-ghosts", "--image-size", "600x480", "--config-dir", str(core_defaults)]) == 0
    assert max(_ghost_centres(out)) < max(_ghost_centres(reference))
    (seq / "seqinfo.ini").write_text("[Sequence]\nimWidth=640\nimHeight=-1\nframeRate=10\n")
    assert main([str(seq / "det" / "det.txt"), "-o", str(out), "--config-dir", str(core_defaults)]) == 2
    assert "imHeight" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["640", "640x", "ax480", "0x480", "640x-2", "640x480x3"])
def test_bad_image_size_is_a_usage_error(tmp_path: Path, text: str) -> None:
    det_path = tmp_path / "det.txt"
    det_path.write_text(_leaver())
    with pytest.raises(ValueError):
        parse_image_size(text)
    with pytest.raises(SystemExit) as exc:
        main([str(det_path), "-o", str(tmp_path / "out.txt"), "--image-size", text])
    assert exc.value.code == 2


def test_parse_image_size() -> None:
    assert parse_image_size("640x480") == (640, 480)
    assert parse_image_size("1920X1080") == (1920, 1080)


def test_the_shipped_world_model_yaml_is_the_default(tmp_path: Path, core_defaults: Path, monkeypatch) -> None:
    """Run from the repository, mot_track starts from config/world_model.yaml (the node's
    configuration): its ghost_min_hits (20) holds the ghost of a 10-hit track unpublished, which
    the core defaults (0) publish; a flag still overrides the YAML."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    det_path = tmp_path / "det.txt"
    det_path.write_text(_walker(range(1, 11)) + _walker(range(15, 19)))
    runs = {}
    for name, extra in (("shipped", []), ("core", ["--config-dir", str(core_defaults)]),
                        ("override", ["--ghost-min-hits", "0"])):
        out = tmp_path / f"{name}.txt"
        assert main([str(det_path), "-o", str(out), "--include-ghosts", *extra]) == 0
        runs[name] = set(_read_rows(out)[:, 0])
    assert not runs["shipped"] & set(range(11, 15)), "no ghost of a 10-hit track with the shipped YAML"
    assert set(range(11, 15)) <= runs["core"] and set(range(11, 15)) <= runs["override"]
