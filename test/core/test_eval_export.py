"""Raw outputs (``core.eval.export``): the exported MOTChallenge files re-scored by TrackEval's own
pipeline give the in-memory IDF1 / HOTA / MOTA, and the 3D CSVs hold what was recorded."""
from __future__ import annotations

import configparser
import csv

import numpy as np
import pytest

from object_permanence.core.eval.export import export_raw_outputs, rescore_trackeval
from object_permanence.core.eval.metrics import evaluate
from object_permanence.core.eval.mot import mot_metrics
from object_permanence.core.eval.records import FrameRecord
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import Detection, ObjectKind, Track, Track3D, TrackState

N = 90
SWITCH_AT = 50  # object 1 changes id here
DROPPED = range(30, 42)  # object 2's track is missing here
HIDDEN = range(60, 75)  # object 3 below min_visibility here: a VISIBLE track on it, then a ghost
ID_BASE = 2**40  # clock-seeded 64-bit ids, as the nodes hand out: too large for TrackEval's id arrays


def _track(tid: int, state: TrackState, box) -> Track:
    return Track(tid, state, np.asarray(box, float), np.array([3.0, -1.0]), np.eye(4), 0.8, 0, "obj",
                 age=5, hits=5, frames_since_seen=0)


def sim_records() -> list[FrameRecord]:
    """Ground truth of ``clean`` seed 1000 with tracks derived from it: perturbed boxes, an id
    switch, a dropped segment, a false positive, a hidden object tracked through it, 3D points."""
    world = SimWorld(make_scenario("clean"), seed=1000)
    rng = np.random.default_rng(1000)
    records = []
    for k in range(N):
        truth = world.ground_truth(k)
        rec = FrameRecord(index=k, stamp=truth.time, gt_left=truth.left, gt_right=truth.right, latency_s=0.02)
        for cam in ("left", "right"):
            tracks, dets = [], []
            for g in getattr(truth, cam):
                if g.kind != ObjectKind.OBJECT:
                    continue
                if g.object_id == 3 and k in HIDDEN:
                    g.visibility = 0.1  # a distractor for TrackEval: the track on it is removed
                box = g.box + rng.normal(0.0, 3.0, 4)
                if g.object_id == 2 and k in DROPPED:
                    continue
                tid = ID_BASE + g.object_id + (10 if g.object_id == 1 and k >= SWITCH_AT else 0)
                state = TrackState.OCCLUDED if g.object_id == 3 and k >= HIDDEN.start + 8 and k in HIDDEN \
                    else TrackState.VISIBLE
                tracks.append(_track(tid, state, box))
                dets.append(Detection(g.box.copy(), 0.9, 0))
            if k % 7 == 0:  # a false positive where nothing is
                tracks.append(_track(ID_BASE + 900 + k, TrackState.VISIBLE, [600.0, 40.0, 30.0, 30.0]))
            setattr(rec, f"tracks_{cam}", tracks)
            setattr(rec, f"detections_{cam}", dets)
        points = [Track3D(i, TrackState.VISIBLE, 0, "obj", p + 0.01, np.zeros(3), np.eye(3), ID_BASE + 1 + i,
                          ID_BASE + 1 + i, 0.9, 0)
                  for i, p in enumerate(world.object_positions(k))]
        rec.tracks3d, rec.tracks3d_unfiltered = points[:2], points
        records.append(rec)
    return records


def track_ids(files, sequence: str) -> dict[int, int]:
    """The id map of an exported sequence: compact MOT id -> the pipeline's track id."""
    rows = np.loadtxt(files.mot_dir / "id_map" / f"{sequence}.csv", delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    return {int(m): int(t) for m, t in rows}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    records = sim_records()
    out = tmp_path_factory.mktemp("raw")
    return records, export_raw_outputs(records, out, "clean-1000", (640, 480), 30.0)


def test_trackeval_on_the_exported_files_reproduces_the_metrics(exported):
    records, files = exported
    rescored = rescore_trackeval(files.mot_dir)
    assert sorted(rescored) == ["clean-1000-left", "clean-1000-right"]
    for cam in ("left", "right"):
        ours = mot_metrics(records, cam)
        theirs = rescored[f"clean-1000-{cam}"]
        for key in ("idf1", "hota", "mota"):
            assert theirs[key] == pytest.approx(ours[key], abs=1e-6), (cam, key)
        assert theirs["num_switches"] == ours["num_switches"] >= 1
        # not a trivial sequence: the switch, the gap and the false positives all cost
        assert ours["idf1"] < 0.95 and ours["mota"] < 0.95 and ours["clr_fp"] > 0
    metrics = evaluate(records)  # metrics.json: the mean over the two cameras
    for key in ("idf1", "hota", "mota"):
        assert np.mean([rescored[f"clean-1000-{cam}"][key] for cam in ("left", "right")]) == \
            pytest.approx(metrics[key], abs=1e-6)


def test_distractor_rows_make_trackeval_drop_tracks_on_hidden_objects(exported):
    records, files = exported
    rows = np.loadtxt(files.mot_dir / "gt" / "clean-1000-left" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    distractors = rows[rows[:, 7] == 8]
    assert set(distractors[:, 1]) == {3} and sorted(distractors[:, 0]) == [k + 1 for k in HIDDEN]
    assert np.all(rows[:, 6] == 1) and set(rows[:, 7]) == {1, 8}
    hyp = np.loadtxt(files.mot_dir / "trackers" / "object_permanence" / "data" / "clean-1000-left.txt",
                     delimiter=",", ndmin=2)
    visible_on_hidden = 8  # frames 60–67: object 3 below min_visibility, its track still VISIBLE
    assert mot_metrics(records, "left")["num_hyp_dets"] == len(hyp) - visible_on_hidden
    assert hyp[:, 0].min() == 1 and hyp[:, 0].max() == N  # 1-based frames, one per record
    ghosts = np.loadtxt(files.mot_dir / "ghosts" / "clean-1000-left.txt", delimiter=",", ndmin=2)
    ids = track_ids(files, "clean-1000-left")
    assert sorted(ids) == list(range(1, len(ids) + 1)), "compact ids 1..N"
    assert sorted(ghosts[:, 0]) == [k + 1 for k in HIDDEN if k >= HIDDEN.start + 8]
    assert {ids[int(i)] for i in ghosts[:, 1]} == {ID_BASE + 3}, "ghost and visible rows share one id map"
    assert ids[int(hyp[0, 1])] == records[0].tracks_left[0].track_id
    assert not set(map(tuple, ghosts[:, :2])) & set(map(tuple, hyp[:, :2]))  # ghosts kept apart


def test_boxes_are_written_exactly_and_seqinfo_describes_the_sequence(exported):
    records, files = exported
    hyp = np.loadtxt(files.mot_dir / "trackers" / "object_permanence" / "data" / "clean-1000-right.txt",
                     delimiter=",", ndmin=2)
    first = records[0].tracks_right[0]
    x, y = first.box[0] - first.box[2] / 2, first.box[1] - first.box[3] / 2
    np.testing.assert_array_equal(hyp[0, 2:6], [x, y, first.box[2], first.box[3]])
    assert track_ids(files, "clean-1000-right")[int(hyp[0, 1])] == first.track_id
    ini = configparser.ConfigParser()
    ini.read(files.mot_dir / "gt" / "clean-1000-right" / "seqinfo.ini")
    seq = ini["Sequence"]
    assert (seq["name"], seq["seqLength"], seq["imWidth"], seq["imHeight"], seq["frameRate"]) == \
        ("clean-1000-right", str(N), "640", "480", "30")
    seqmap = (files.mot_dir / "gt" / "seqmaps" / "OP-all.txt").read_text().split()
    assert seqmap == ["name", "clean-1000-left", "clean-1000-right"]


def test_3d_csvs_hold_tracks_and_truth(exported):
    records, files = exported
    with files.tracks3d.open() as fp:
        rows = list(csv.DictReader(fp))
    assert list(rows[0]) == ["stamp", "id", "x", "y", "z", "state"] and len(rows) == 2 * N
    p = records[5].tracks3d[1]
    row = rows[5 * 2 + 1]
    assert float(row["stamp"]) == records[5].stamp and int(row["id"]) == p.track_id
    assert [float(row[c]) for c in "xyz"] == p.position.tolist() and row["state"] == "VISIBLE"
    with files.tracks3d_unfiltered.open() as fp:
        assert len(list(csv.DictReader(fp))) == 3 * N
    with files.truth3d.open() as fp:
        truth = list(csv.DictReader(fp))
    assert list(truth[0]) == ["stamp", "id", "x", "y", "z", "visibility_left", "visibility_right"]
    assert len(truth) == 3 * N
    hidden = [r for r in truth if r["id"] == "3" and float(r["stamp"]) == records[HIDDEN.start].stamp]
    assert float(hidden[0]["visibility_left"]) == 0.1


def test_bad_arguments_and_missing_tree_are_reported(tmp_path):
    records = sim_records()[:3]
    for kwargs, name in (({"sequence": "a/b"}, "sequence"), ({"image_size": (0, 480)}, "image_size"),
                         ({"frame_rate": 0.0}, "frame_rate"), ({"min_visibility": 2.0}, "min_visibility")):
        with pytest.raises(ValueError, match=name):
            export_raw_outputs(records, tmp_path, **kwargs)
    with pytest.raises(ValueError, match="seqmap"):
        rescore_trackeval(tmp_path / "nothing")
