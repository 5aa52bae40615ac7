"""`make eval` (``tools.eval_tracking`` on ``core.eval.sequences`` / ``tracking_eval``): short runs
write every output with every key, the files re-score to the same figures with TrackEval, the
aggregation over seeds, the shipped configuration, and the held-out guard of the peers' tuning."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from object_permanence.core.eval.mot_io import read_mot_detections
from object_permanence.core.eval.peers import PEER_NAMES
from object_permanence.core.eval.reentry import REENTRY_KEYS
from object_permanence.core.eval.sequences import reload_detections, simulate_sequences, write_sequence
from object_permanence.core.eval.tracking_eval import ROW_KEYS, SequenceScore, aggregate
from object_permanence.core.world_model import WorldModelConfig
from object_permanence.tools import ablate_appearance, eval_tracking

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    """1 scenario, 1 seed, 30 frames, both difficulties, ours + one peer, no real data."""
    out = tmp_path_factory.mktemp("eval")
    assert eval_tracking.main(["--out", str(out), "--scenarios", "crossing", "--seeds", "1000", "--frames", "30",
                               "--trackers", "ours,bytetrack", "--no-tud", "--config-dir", str(REPO / "config")]) == 0
    return out


def test_short_run_writes_every_output_with_every_key(short_run: Path) -> None:
    rows = json.loads((short_run / "tracking.json").read_text())
    assert [(r["difficulty"], r["tracker"]) for r in rows] == [
        ("realistic", "ours"), ("realistic", "bytetrack"), ("hard", "ours"), ("hard", "bytetrack")]
    for row in rows:
        assert tuple(row) == ROW_KEYS + REENTRY_KEYS
        assert row["reentry_returns"] == 0 and row["lookalike_newcomers"] == 0  # 30 frames of crossing
        assert row["dataset"] == "crossing" and row["seeds"] == [1000]
        for key in ("hota", "idf1", "mota", "id_switches_per_100_frames"):
            assert isinstance(row[key], float) and row[key] >= (-np.inf if key == "mota" else 0.0)
    peers = [r for r in rows if r["tracker"] == "bytetrack"]
    assert all(r["ghost_precision"] is None and r["reacquire_error_px"] is None for r in peers)
    table = (short_run / "tracking.md").read_text()
    assert "| crossing | ours |" in table and "`hard`" in table and "—" in table
    assert "### Re-entry" in table
    assert "Not a held-out figure" not in table
    assert (short_run / "tracking.png").stat().st_size > 10_000
    assert len(json.loads((short_run / "sequences.json").read_text())) == 4
    for cam in ("left", "right"):
        seq = short_run / "detections" / f"crossing-realistic-s1000-{cam}"
        assert (seq / "seqinfo.ini").is_file() and (seq / "gt" / "gt.txt").is_file()
        assert max(read_mot_detections(seq / "det" / "det.txt")) <= 30
        assert (short_run / "tracks" / "bytetrack" / "data" / f"{seq.name}.txt").is_file()
        assert (short_run / "ghosts" / "ours" / f"{seq.name}.txt").is_file()
    assert "crossing-hard-s1000-left" in (short_run / "detections" / "seqmaps" / "OP-all.txt").read_text()


def test_written_files_rescore_to_the_same_figures_with_trackeval(short_run: Path) -> None:
    import trackeval

    quiet = dict(USE_PARALLEL=False, BREAK_ON_ERROR=True, RETURN_ON_ERROR=False, LOG_ON_ERROR=None,
                 PRINT_RESULTS=False, PRINT_ONLY_COMBINED=False, PRINT_CONFIG=False, TIME_PROGRESS=False,
                 DISPLAY_LESS_PROGRESS=True, OUTPUT_SUMMARY=False, OUTPUT_EMPTY_CLASSES=False,
                 OUTPUT_DETAILED=False, PLOT_CURVES=False)
    dataset = dict(GT_FOLDER=str(short_run / "detections"), TRACKERS_FOLDER=str(short_run / "tracks"),
                   OUTPUT_FOLDER=None, TRACKERS_TO_EVAL=["ours", "bytetrack"], CLASSES_TO_EVAL=["pedestrian"],
                   BENCHMARK="OP", SPLIT_TO_EVAL="all", INPUT_AS_ZIP=False, PRINT_CONFIG=False,
                   DO_PREPROC=True, TRACKER_SUB_FOLDER="data", SKIP_SPLIT_FOL=True)
    with contextlib.redirect_stdout(io.StringIO()):
        data = trackeval.datasets.MotChallenge2DBox(dataset)
        results, _ = trackeval.Evaluator(quiet).evaluate(
            [data], [trackeval.metrics.HOTA(), trackeval.metrics.Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False})])
    per_seq = results[data.get_name()]
    for row in json.loads((short_run / "tracking.json").read_text()):
        scored = [per_seq[row["tracker"]][f"crossing-{row['difficulty']}-s1000-{cam}"]["pedestrian"]
                  for cam in ("left", "right")]
        assert row["idf1"] == pytest.approx(np.mean([s["Identity"]["IDF1"] for s in scored]), abs=1e-9)
        assert row["hota"] == pytest.approx(np.mean([np.mean(s["HOTA"]["HOTA"]) for s in scored]), abs=1e-9)


def test_eval_with_the_real_sequence(tmp_path: Path, shared_data: Path) -> None:
    tud = shared_data / "mot" / "TUD-Campus" / "gt.txt"
    assert eval_tracking.main(["--out", str(tmp_path), "--scenarios", "clean", "--seeds", "1000,1001",
                               "--frames", "20", "--difficulties", "realistic", "--trackers", "ours,sort",
                               "--tud", str(tud), "--tud-seeds", "1000-1002",
                               "--config-dir", str(REPO / "config")]) == 0
    rows = json.loads((tmp_path / "tracking.json").read_text())
    real = [r for r in rows if r["dataset"] == "TUD-Campus"]  # its own seeds, not the simulator's
    assert [(r["tracker"], r["difficulty"], r["seeds"]) for r in real] == [
        ("ours", "real", [1000, 1001, 1002]), ("sort", "real", [1000, 1001, 1002])]
    assert "5% clutter (seeds 1000–1002)" in (tmp_path / "tracking.md").read_text()
    assert eval_tracking.main(["--out", str(tmp_path), "--tud", str(tmp_path / "none.txt")]) == 2
    # TUD-Campus alone, on tuning seeds (the report says they are not held out)
    assert eval_tracking.main(["--out", str(tmp_path / "tud"), "--scenarios", "none", "--tud-seeds", "3",
                               "--frames", "20", "--trackers", "ours", "--tud", str(tud),
                               "--config-dir", str(REPO / "config")]) == 0
    rows = json.loads((tmp_path / "tud" / "tracking.json").read_text())
    assert [(r["dataset"], r["seeds"]) for r in rows] == [("TUD-Campus", [3])]
    assert "Not a held-out figure" in (tmp_path / "tud" / "tracking.md").read_text()
    with pytest.raises(SystemExit):
        eval_tracking.main(["--out", str(tmp_path), "--scenarios", "none", "--no-tud"])


def test_detections_read_back_from_the_files_are_what_every_tracker_gets(tmp_path: Path) -> None:
    seq = simulate_sequences("clean", 1000, ["realistic"], n_frames=5)["realistic"]
    again = reload_detections(seq, write_sequence(seq, tmp_path))
    for cam in ("left", "right"):
        for before, after in zip(seq.streams[cam].detections, again.streams[cam].detections):
            assert [d.class_id for d in after] == [d.class_id for d in before]
            np.testing.assert_allclose([d.box for d in after], [d.box for d in before], atol=0.011)
            assert all(a.embedding is b.embedding and a.embedding is not None for a, b in zip(after, before))


def _score(seed: int, **kw) -> SequenceScore:
    base = dict(dataset="long_occlusion", difficulty="realistic", seed=seed, tracker="ours", hota=0.5, idf1=0.6,
                mota=0.4, camera_frames=600, id_switches=3)
    return SequenceScore(**{**base, **kw})


def test_aggregate_means_the_scores_and_pools_the_counts() -> None:
    row = aggregate([_score(1001, hota=0.6, episodes=4, recovered=4, reacquire_errors=[2.0, 4.0], ghosts=10,
                            ghosts_correct=9),
                     _score(1000, hota=0.4, id_switches=0, episodes=0, ghosts=0)])
    assert tuple(row) == ROW_KEYS and row["seeds"] == [1000, 1001]
    assert row["hota"] == pytest.approx(0.5) and row["idf1"] == pytest.approx(0.6)
    assert row["id_switches_per_100_frames"] == pytest.approx(100 * 3 / 1200)
    assert row["occlusion_recovery_rate"] == 1.0  # 4 / 4: the seed without episodes does not count as 0
    assert row["reacquire_error_px"] == pytest.approx(3.0) and row["ghost_precision"] == pytest.approx(0.9)
    empty = aggregate([_score(1000)])
    assert empty["occlusion_recovery_rate"] is None and empty["ghost_precision"] is None
    assert empty["reacquire_error_px"] is None
    with pytest.raises(ValueError, match="one tracker"):
        aggregate([_score(1000), _score(1001, tracker="sort")])
    with pytest.raises(ValueError):
        aggregate([])


def test_ours_runs_with_the_shipped_world_model_and_detector_yaml(tmp_path: Path) -> None:
    config = eval_tracking.shipped_world_model_config(REPO / "config")
    params = yaml.safe_load((REPO / "config" / "world_model.yaml").read_text())["world_model"]["ros__parameters"]
    for f in dataclasses.fields(WorldModelConfig):
        assert getattr(config, f.name) == params[f.name], f.name
    detector = yaml.safe_load((REPO / "config" / "detector.yaml").read_text())["detector"]["ros__parameters"]
    assert eval_tracking.shipped_embedding_bins(REPO / "config") == tuple(detector["embedding_bins"])
    (tmp_path / "detector.yaml").write_text("detector:\n  ros__parameters:\n    embedding_bins: [8, 0, 4]\n")
    with pytest.raises(ValueError, match="bins"):
        eval_tracking.shipped_embedding_bins(tmp_path)
    (tmp_path / "world_model.yaml").write_text("world_model: {}\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        eval_tracking.shipped_world_model_config(tmp_path)


def test_arguments_and_the_held_out_guard(tmp_path: Path) -> None:
    assert eval_tracking.parse_seeds("1000-1002,7") == [7, 1000, 1001, 1002]
    for bad in ("", "5-3", "a", "-1"):
        with pytest.raises(ValueError):
            eval_tracking.parse_seeds(bad)
    for argv in (["--tune-peers", "--seeds", "998-1000"], ["--scenarios", "nowhere"], ["--frames", "0"],
                 ["--trackers", "ours,deepsort"], ["--difficulties", "impossible"],
                 ["--tune-peers", "--trackers", "sort"]):
        with pytest.raises(SystemExit) as exc:
            eval_tracking.main(["--out", str(tmp_path), "--config-dir", str(tmp_path), *argv])
        assert exc.value.code == 2
    assert not (tmp_path / "eval_peers.yaml").exists()


def test_learned_embedding_reaches_the_detections(tmp_path: Path) -> None:
    """``--embedding learned`` gives every simulated detection the re-ID network's vector (128-d,
    unit length, not the histogram's); a detector.yaml naming an unknown embedding or missing
    weights is an error (exit 2), before any sequence runs."""
    pytest.importorskip("onnxruntime")
    setup = eval_tracking.EvalSetup(("ours",), WorldModelConfig(), {}, tmp_path, ("realistic",), 3,
                                    embedding="learned", embedding_weights=REPO / "models" / "reid" / "reid_net.pt")
    seq = next(iter(simulate_sequences("crossing", 1000, ["realistic"], 3, embedder=setup.embedder()).values()))
    hist = next(iter(simulate_sequences("crossing", 1000, ["realistic"], 3).values()))
    learned = [d.embedding for frame in seq.streams["left"].detections for d in frame]
    colour = [d.embedding for frame in hist.streams["left"].detections for d in frame]
    assert learned and len(learned) == len(colour)
    assert all(abs(np.linalg.norm(e) - 1.0) < 1e-4 for e in learned)
    assert not np.allclose(np.stack(learned), np.stack(colour))
    for name in ("world_model.yaml", "detector.yaml"):
        (tmp_path / name).write_text((REPO / "config" / name).read_text())
    args = ["--out", str(tmp_path / "out"), "--scenarios", "clean", "--seeds", "1000", "--frames", "3",
            "--no-tud", "--config-dir", str(tmp_path)]
    assert eval_tracking.main([*args, "--embedding", "learned", "--embedding-weights", str(tmp_path / "none.pt")]) == 2
    (tmp_path / "detector.yaml").write_text("detector:\n  ros__parameters:\n    embedding: sift\n")
    assert eval_tracking.main(args) == 2
    assert not (tmp_path / "out" / "tracking.json").exists()


def test_tuning_writes_a_peer_file_the_eval_reads(tmp_path: Path) -> None:
    for name in ("world_model.yaml", "detector.yaml"):
        (tmp_path / name).write_text((REPO / "config" / name).read_text())
    assert eval_tracking.main(["--tune-peers", "--seeds", "3", "--scenarios", "clean", "--frames", "12",
                               "--config-dir", str(tmp_path)]) == 0
    document = yaml.safe_load((tmp_path / "eval_peers.yaml").read_text())
    assert document["tuning"]["seeds"] == [3] and "--tune-peers" in document["tuning"]["command"]
    assert list(document["peers"]) == list(PEER_NAMES)
    assert all(0.0 < v <= 1.0 for v in document["tuning"]["objective_of_chosen"].values())
    assert eval_tracking.main(["--out", str(tmp_path / "out"), "--scenarios", "clean", "--seeds", "3",
                               "--frames", "12", "--difficulties", "realistic", "--no-tud",
                               "--config-dir", str(tmp_path)]) == 0
    assert "Not a held-out figure" in (tmp_path / "out" / "tracking.md").read_text()  # seed 3 tuned them


def test_worker_processes_do_not_change_a_figure(tmp_path: Path) -> None:
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / workers
        assert eval_tracking.main(["--out", str(out), "--scenarios", "clean,crossing", "--seeds", "1000,1001",
                                   "--frames", "12", "--difficulties", "realistic", "--trackers", "ours,ocsort",
                                   "--no-tud", "--workers", workers, "--config-dir", str(REPO / "config")]) == 0
        outputs.append([(out / name).read_text() for name in ("tracking.json", "sequences.json")])
    assert outputs[0] == outputs[1]


def test_reentry_columns_for_every_tracker_and_the_look_alikes(tmp_path: Path) -> None:
    """On the reentry scenario (tuning seed 0, 300 frames) every tracker gets re-entry counts, and
    the newcomers are the simulator's look-alikes."""
    assert eval_tracking.lookalike_newcomers("reentry", 0) == (5, 6)
    assert eval_tracking.lookalike_newcomers("crossing", 0) == ()
    assert eval_tracking.main(["--out", str(tmp_path), "--scenarios", "reentry", "--seeds", "0", "--frames", "300",
                               "--difficulties", "realistic", "--trackers", "ours,sort", "--no-tud",
                               "--config-dir", str(REPO / "config")]) == 0
    rows = json.loads((tmp_path / "tracking.json").read_text())
    assert [r["tracker"] for r in rows] == ["ours", "sort"]
    for row in rows:
        assert row["reentry_returns"] >= 2 and row["lookalike_newcomers"] >= 2
        assert 0.0 <= row["reentry_identity"] <= 1.0 and 0.0 <= row["lookalike_errors"] <= 1.0
    table = (tmp_path / "tracking.md").read_text()
    assert "| realistic | reentry | ours |" in table and "| realistic | reentry | sort |" in table
    assert "Not a held-out figure" in table


def test_appearance_ablation_writes_a_row_per_memory_and_scenario(tmp_path: Path) -> None:
    assert ablate_appearance.main(["--out", str(tmp_path), "--seeds", "0", "--scenarios", "crossing",
                                   "--workers", "1", "--config-dir", str(REPO / "config")]) == 0
    rows = json.loads((tmp_path / "appearance_ablation.json").read_text())
    assert [(r["memory"], r["dataset"]) for r in rows] == [(m, "crossing") for m in ("ema", "bank", "dual")]
    assert all(tuple(r) == ablate_appearance.ROW_KEYS and 0.0 <= r["idf1"] <= 1.0 for r in rows)
    assert "| crossing | realistic | dual |" in (tmp_path / "appearance_ablation.md").read_text()
    assert ablate_appearance.main(["--out", str(tmp_path), "--scenarios", "nowhere"]) == 2


def test_a_world_model_publishing_tentative_tracks_scores_the_same() -> None:
    """``publish_tentative`` (the shipped world model's, for its persistence filter): records hold
    the confirmed tracks, so every figure equals that of the same world model without it."""
    from object_permanence.core.eval.peers import WorldModelTracker
    from object_permanence.core.eval.tracking_eval import build_records, run_tracker, score_run
    from object_permanence.core.types import TrackState

    seq = simulate_sequences("cluttered", 1000, ("realistic",), 60)["realistic"]
    scores = {}
    for publish in (False, True):
        tracks = run_tracker(seq, lambda: WorldModelTracker(WorldModelConfig(publish_tentative=publish)))
        tentative = sum(t.state == TrackState.TENTATIVE for frames in tracks.values() for ts in frames for t in ts)
        assert (tentative > 0) == publish
        records = build_records(seq, tracks)
        assert not any(t.state == TrackState.TENTATIVE for r in records for t in r.tracks_left + r.tracks_right)
        scores[publish] = dataclasses.asdict(score_run(seq, "ours", tracks))
    assert scores[True] == scores[False]
