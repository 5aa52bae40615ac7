"""Tests of the per-frame detection batch: the whole-array check of a clean frame and the
rule-by-rule path give the same batch, every rule still drops its detection."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.appearance_memory import normalise_rows
from object_permanence.core.detection_batch import MAX_BOX_PX, validate_detections
from object_permanence.core.types import Detection

IMAGE = (640, 480)


def clean_frame(rng: np.random.Generator, m: int = 12, dim: int = 8) -> list[Detection]:
    return [Detection(box=np.array([rng.uniform(20, 600), rng.uniform(20, 440), rng.uniform(5, 60),
                                    rng.uniform(5, 60)]), score=float(rng.uniform()), class_id=int(rng.integers(3)),
                      class_name=f"c{i % 3}", embedding=rng.random(dim).astype(np.float32)) for i in range(m)]


def fields(batch) -> tuple:
    return (batch.boxes, batch.scores, batch.class_ids, batch.class_names, batch.embeddings, batch.has_embedding)


@pytest.mark.parametrize("image_size", [None, IMAGE])
@pytest.mark.parametrize("embedding_dim", [None, 8])
def test_clean_frame_keeps_everything_as_the_rule_by_rule_path(image_size, embedding_dim) -> None:
    """A frame with one bad detection goes rule by rule; its other rows are the clean frame's batch."""
    rng = np.random.default_rng(0)
    dets = clean_frame(rng)
    batch, rejections, dim = validate_detections(dets, image_size, embedding_dim)
    assert rejections == [] and dim == 8 and len(batch) == len(dets)
    bad = Detection(box=np.array([np.nan, 1.0, 2.0, 3.0]), score=0.5, class_id=0)
    slow, slow_rejections, slow_dim = validate_detections([*dets[:5], bad, *dets[5:]], image_size, embedding_dim)
    assert slow_rejections == ["detection 5: box must be four finite numbers cx, cy, w, h, got [nan, 1.0, 2.0, 3.0]"]
    assert slow_dim == dim
    for got, want in zip(fields(batch), fields(slow)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert batch.class_names.dtype == object and batch.class_names.tolist() == [d.class_name for d in dets]
    np.testing.assert_array_equal(batch.boxes, np.stack([d.box for d in dets]))
    np.testing.assert_array_equal(batch.embeddings, np.stack([d.embedding for d in dets]))
    assert batch.has_embedding.all()


def _break(d: Detection, how: str) -> Detection:
    box = d.box.copy()
    emb = d.embedding.copy()
    score = d.score
    if how == "nan":
        box[1] = np.nan
    elif how == "inf":
        box[0] = np.inf
    elif how == "zero_width":
        box[2] = 0.0
    elif how == "negative_height":
        box[3] = -1.0
    elif how == "huge":
        box[0] = 2 * MAX_BOX_PX
    elif how == "left":
        box[0] = -box[2]  # x2 < 0
    elif how == "above":
        box[1] = -box[3]
    elif how == "right":
        box[0] = IMAGE[0] + box[2]  # x1 > width
    elif how == "below":
        box[1] = IMAGE[1] + box[3]
    elif how == "score_high":
        score = 1.01
    elif how == "score_low":
        score = -0.01
    elif how == "score_nan":
        score = float("nan")
    elif how == "emb_inf":
        emb[2] = np.inf
    elif how == "emb_nan":
        emb[0] = np.nan
    elif how == "emb_length":
        emb = np.ones(5, np.float32)
    return Detection(box=box, score=score, class_id=d.class_id, class_name=d.class_name, embedding=emb)


@pytest.mark.parametrize("how,problem", [
    ("nan", "four finite numbers"), ("inf", "four finite numbers"), ("zero_width", "box size must be > 0"),
    ("negative_height", "box size must be > 0"), ("huge", "box size must be > 0"), ("left", "outside"),
    ("above", "outside"), ("right", "outside"), ("below", "outside"), ("score_high", "score"),
    ("score_low", "score"), ("score_nan", "score"), ("emb_inf", "not finite"), ("emb_nan", "not finite"),
    ("emb_length", "embedding has 5 values"),
])
def test_each_rule_still_drops_its_detection(how: str, problem: str) -> None:
    rng = np.random.default_rng(1)
    dets = clean_frame(rng)
    dets[7] = _break(dets[7], how)
    batch, rejections, _ = validate_detections(dets, IMAGE, 8)
    assert len(rejections) == 1 and rejections[0].startswith("detection 7: ") and problem in rejections[0]
    assert len(batch) == len(dets) - 1


def test_an_embedding_sum_that_overflows_is_checked_rule_by_rule() -> None:
    """Finite embeddings whose float32 sum overflows are not invalid: the frame is kept whole."""
    rng = np.random.default_rng(2)
    dets = clean_frame(rng)
    for d in dets:
        d.embedding = np.full(8, 3e38, np.float32)
    batch, rejections, _ = validate_detections(dets, IMAGE, 8)
    assert rejections == [] and len(batch) == len(dets)


def test_unit_embeddings_are_normalise_rows_computed_once() -> None:
    rng = np.random.default_rng(3)
    dets = clean_frame(rng)
    dets[2].embedding = np.zeros(8, np.float32)
    batch, _, _ = validate_detections(dets, None, None)
    unit, ok = batch.unit
    want_unit, want_ok = normalise_rows(batch.embeddings)
    np.testing.assert_array_equal(unit, want_unit)
    np.testing.assert_array_equal(ok, want_ok)
    assert not ok[2] and ok.sum() == len(dets) - 1
    assert batch.unit[0] is unit  # cached


def test_empty_frame() -> None:
    batch, rejections, dim = validate_detections([], IMAGE, None)
    assert len(batch) == 0 and rejections == [] and dim is None and batch.class_names.shape == (0,)
