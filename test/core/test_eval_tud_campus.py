"""TUD-Campus as a benchmark (``core.eval.tud_campus``): the MOT15 loader and the perturbation
into detections (dropout windows, jitter, clutter), deterministic per seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.eval.mot_io import MotFormatError
from object_permanence.core.eval.tud_campus import (
    FPS,
    IMAGE_SIZE,
    MotGroundTruth,
    Perturbation,
    load_mot15_ground_truth,
    perturb_ground_truth,
    tud_sequence,
)
from object_permanence.core.types import ObjectKind

# rows per identity in gt.txt (counted with awk on the file)
ROWS_PER_ID = {1: 24, 2: 48, 3: 63, 4: 71, 5: 71, 6: 9, 7: 48, 8: 25}


@pytest.fixture(scope="module")
def tud_gt(shared_data: Path) -> Path:
    return shared_data / "mot" / "TUD-Campus" / "gt.txt"


def test_loader_reads_the_mot15_layout(tud_gt: Path) -> None:
    gt = load_mot15_ground_truth(tud_gt)
    assert gt.n_frames == 71 and gt.frames.min() == 1 and len(gt.ids) == 359
    ids, counts = np.unique(gt.ids, return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist())) == ROWS_PER_ID
    first = (gt.frames == 1) & (gt.ids == 1)  # "1,1,399,182,121,229,1,-1,-1,-1"
    np.testing.assert_allclose(gt.boxes[first], [[399 + 121 / 2, 182 + 229 / 2, 121, 229]])
    assert np.all(np.diff(gt.frames) >= 0)  # sorted by frame


def test_loader_ignores_world_coordinates_and_drops_ignored_rows(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    # columns 8-10 are world coordinates in MOT15 (here real numbers, not class/visibility)
    path.write_text("2,3,10,20,30,40,1,1.5,-7.25,0\n1,3,12,20,30,40,1,1.4,-7.2,0\n1,4,0,0,5,5,0,-1,-1,-1\n")
    gt = load_mot15_ground_truth(path)
    assert gt.frames.tolist() == [1, 2] and gt.ids.tolist() == [3, 3]
    np.testing.assert_allclose(gt.boxes, [[27, 40, 30, 40], [25, 40, 30, 40]])
    path.write_text("1,0,10,20,30,40,1,-1,-1,-1\n")
    with pytest.raises(MotFormatError, match="ids must be integers >= 1"):
        load_mot15_ground_truth(path)
    path.write_text("1,2,10,20,0,40,1,-1,-1,-1\n")
    with pytest.raises(MotFormatError, match="sizes positive"):
        load_mot15_ground_truth(path)


def test_perturbation_has_the_stated_fractions(tud_gt: Path) -> None:
    gt = load_mot15_ground_truth(tud_gt)
    lengths = []
    for seed in range(1000, 1020):
        p = perturb_ground_truth(gt, seed)
        assert len(p.dropouts) == 3  # a third of 8 identities, rounded
        dropped = 0
        for oid, (first, last) in p.dropouts.items():
            frames = gt.frames[gt.ids == oid]
            assert frames.min() <= first <= last <= frames.max()
            n = int(np.count_nonzero((frames >= first) & (frames <= last)))
            assert 1 <= n <= 30
            lengths.append(n)
            dropped += n
        assert p.n_real == len(gt.ids) - dropped
        assert p.n_clutter == round(0.05 * p.n_real)
        assert sum(len(d) for d in p.detections.values()) == p.n_real + p.n_clutter
        for dets in p.detections.values():
            scores = [d.score for d in dets]
            assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
            for d in dets:  # every box lies on the 640x480 image at least in part
                assert 0 <= d.box[0] + d.box[2] / 2 and d.box[0] - d.box[2] / 2 <= IMAGE_SIZE[0]
    assert min(lengths) < 10 and max(lengths) > 20  # windows spread over 1..30 frames


def test_perturbation_is_deterministic_per_seed(tud_gt: Path) -> None:
    gt = load_mot15_ground_truth(tud_gt)

    def flat(seed: int) -> tuple:
        p = perturb_ground_truth(gt, seed)
        return p.dropouts, [(f, d.box.tolist(), d.score) for f in sorted(p.detections) for d in p.detections[f]]

    assert flat(1000) == flat(1000)
    assert flat(1000) != flat(1001)
    with pytest.raises(ValueError, match="seed"):
        perturb_ground_truth(gt, -1)


def test_jitter_is_three_percent_of_the_box_size() -> None:
    n = 4000  # one identity, one box per frame, nothing dropped, no clutter
    box = np.array([300.0, 200.0, 50.0, 100.0])
    gt = MotGroundTruth(frames=np.arange(1, n + 1), ids=np.ones(n, dtype=np.int64), boxes=np.tile(box, (n, 1)))
    p = perturb_ground_truth(gt, 1000, Perturbation(dropout_id_fraction=0.0, clutter_frac=0.0))
    boxes = np.array([p.detections[f][0].box for f in range(1, n + 1)])
    rel = (boxes - box) / np.array([50.0, 100.0, 50.0, 100.0])  # centre error / size, size change / size
    np.testing.assert_allclose(rel.std(axis=0), 0.03, rtol=0.1)
    np.testing.assert_allclose(rel.mean(axis=0), 0.0, atol=0.003)


@pytest.mark.parametrize("field, value", [("dropout_id_fraction", 1.5), ("jitter_frac", -0.1),
                                          ("dropout_frames", (0, 30)), ("dropout_frames", (5, 3)),
                                          ("clutter_score_mean", 1.0), ("score_concentration", 0.0)])
def test_perturbation_config_is_validated(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Perturbation(**{field: value})


def test_sequence_has_the_real_timing_and_visible_ground_truth(tud_gt: Path) -> None:
    seq = tud_sequence(tud_gt, 1000)
    assert (seq.fps, seq.image_size, seq.n_frames, list(seq.streams)) == (FPS, (640, 480), 71, ["left"])
    stream = seq.streams["left"]
    assert sum(len(t) for t in stream.truth) == 359
    assert all(g.kind == ObjectKind.OBJECT and g.visibility == 1.0 for t in stream.truth for g in t)
    assert len(stream.detections) == 71 and seq.name == "TUD-Campus-real-s1000"
