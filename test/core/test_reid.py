"""Tests of the learned re-ID embedding: crops, embedder contract, identity data, retrieval scores.

No training here: the embedder runs a tiny randomly initialised network saved to tmp_path.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from object_permanence.core.reid.crops import box_rects, crop_batch, crop_boxes, rect_log_aspect
from object_permanence.core.reid.dataset import (
    IdentityCrops,
    Probes,
    SightingRules,
    WorldRef,
    build_identity_crops,
    sample_probes,
    stratified_frames,
    world_sightings,
    worlds_for_seeds,
)
from object_permanence.core.reid.retrieval import retrieval_metrics

torch = pytest.importorskip("torch")

from object_permanence.core.reid.embedder import LearnedEmbedder  # noqa: E402
from object_permanence.core.reid.model import (  # noqa: E402
    ReidNet,
    ReidNetConfig,
    count_parameters,
    fuse_for_inference,
    save_checkpoint,
)
from object_permanence.core.reid.training import batch_hard_triplet, identity_batches  # noqa: E402


def _image() -> np.ndarray:
    """A 120x160 BGR image whose pixels encode their position (B = x, G = y, R = x + y)."""
    ys, xs = np.mgrid[0:120, 0:160]
    return np.stack([xs, ys, (xs + ys) // 2], axis=2).astype(np.uint8)


# ---------------------------------------------------------------------------------------- crops
def test_crop_inside_is_the_resized_box() -> None:
    img = _image()
    crops, valid = crop_boxes(img, np.array([[50.0, 40.0, 40.0, 60.0]]), size=(16, 8))
    assert crops.shape == (1, 16, 8, 3) and crops.dtype == np.uint8 and valid.tolist() == [True]
    expected = cv2.resize(img[10:70, 30:70], (8, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(crops[0], expected)
    batch, valid = crop_batch(img, np.array([[50.0, 40.0, 40.0, 60.0]]), size=(16, 8))
    assert batch.shape == (1, 3, 16, 8) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0].transpose(1, 2, 0), expected / 255.0, rtol=1e-6)


def test_crops_clip_at_the_border_and_flag_empty_boxes() -> None:
    img = _image()
    boxes = np.array([[0.0, 0.0, 40.0, 40.0],        # top-left quarter in the image
                      [160.0, 60.0, 20.0, 20.0],      # right half in the image
                      [300.0, 60.0, 20.0, 20.0],      # outside
                      [50.0, 50.0, 0.0, 10.0],        # zero width
                      [np.nan, 50.0, 10.0, 10.0]])    # non-finite
    rects = box_rects(boxes, 160, 120)
    np.testing.assert_array_equal(rects[:2], [[0, 0, 20, 20], [150, 50, 160, 70]])
    crops, valid = crop_boxes(img, boxes, size=(8, 8))
    assert valid.tolist() == [True, True, False, False, False]
    np.testing.assert_array_equal(crops[0], cv2.resize(img[0:20, 0:20], (8, 8), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(crops[1], cv2.resize(img[50:70, 150:160], (8, 8), interpolation=cv2.INTER_AREA))
    grown, _ = crop_boxes(img, boxes[1:2], size=(32, 32))  # 10 px wide -> 32: bilinear
    np.testing.assert_array_equal(grown[0], cv2.resize(img[50:70, 150:160], (32, 32), interpolation=cv2.INTER_LINEAR))
    assert not crops[2:].any()
    assert crop_boxes(img, np.zeros((0, 4)), size=(8, 8))[0].shape == (0, 8, 8, 3)
    # the shape of the clipped rect: 20x20, 10x20 (w x h), then the empty ones
    np.testing.assert_allclose(rect_log_aspect(boxes, 160, 120), [0.0, np.log(0.5), 0.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("image, boxes, size, match", [
    (np.zeros((10, 10), np.uint8), np.zeros((1, 4)), (8, 8), "image_bgr"),
    (np.zeros((10, 10, 3), np.float32), np.zeros((1, 4)), (8, 8), "image_bgr"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((2, 3)), (8, 8), "boxes"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 4)), (2, 8), "size"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 4)), 8, "size"),
])
def test_crops_reject_bad_input(image, boxes, size, match) -> None:
    with pytest.raises(ValueError, match=match):
        crop_boxes(image, boxes, size)


# ------------------------------------------------------------------------------------- embedder
_TINY = ReidNetConfig(input_size=(16, 8), widths=(4, 8), embedding_dim=8)


@pytest.fixture
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    model = ReidNet(_TINY)
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them is really tested
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model.eval(), {"note": "random"})
    return path, model


BACKENDS = ("onnxruntime", "torch")


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedder_shape_norm_zero_rows_and_determinism(tiny_weights, backend) -> None:
    path, _ = tiny_weights
    emb = LearnedEmbedder(str(path), device="cpu", backend=backend)
    assert emb.dim == 8 and emb.meta == {"note": "random"} and emb.backend == backend
    img = _image()
    boxes = np.array([[50.0, 40.0, 40.0, 60.0], [150.0, 100.0, 30.0, 30.0], [500.0, 500.0, 10.0, 10.0]])
    out = emb.embed(img, boxes)
    assert out.shape == (3, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out[:2], axis=1), 1.0, rtol=1e-5)
    assert not out[2].any()  # outside the image: no appearance
    np.testing.assert_array_equal(out, emb.embed(img, boxes))
    np.testing.assert_array_equal(out, LearnedEmbedder(path, device="cpu", backend=backend).embed(img, boxes))
    assert emb.embed(img, np.zeros((0, 4))).shape == (0, 8)
    # a stereo pair in one call: the same rows as one call per image
    views = emb.embed_views([img, img[::-1].copy()], [boxes, boxes[:1]])
    np.testing.assert_allclose(views[0], out, atol=1e-6)
    np.testing.assert_allclose(views[1], emb.embed(img[::-1].copy(), boxes[:1]), atol=1e-6)
    assert [v.shape for v in emb.embed_views([img], [np.zeros((0, 4))])] == [(0, 8)]
    with pytest.raises(ValueError, match="embed_views"):
        emb.embed_views([img], [])
    with pytest.raises(ValueError, match="image_bgr"):
        emb.embed(img[:, :, 0], boxes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedder_matches_the_unfused_network(tiny_weights, backend) -> None:
    path, model = tiny_weights
    img = _image()
    boxes = np.array([[50.0, 40.0, 40.0, 60.0], [100.0, 60.0, 50.0, 20.0]])
    batch, _ = crop_batch(img, boxes, (16, 8))
    aspect = torch.tensor([np.log(40 / 60), np.log(50 / 20)], dtype=torch.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch), aspect).numpy()
    np.testing.assert_allclose(LearnedEmbedder(path, "cpu", backend).embed(img, boxes), expected, atol=1e-5)
    fused = fuse_for_inference(ReidNet(_TINY))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())


def test_embedder_errors(tmp_path, tiny_weights) -> None:
    with pytest.raises(FileNotFoundError, match="train_reid"):
        LearnedEmbedder(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a re-ID checkpoint"):
        LearnedEmbedder(bad, device="cpu")
    with pytest.raises(ValueError, match="device"):
        LearnedEmbedder(tiny_weights[0], device="tpu")
    with pytest.raises(ValueError, match="backend"):
        LearnedEmbedder(tiny_weights[0], backend="tensorrt")
    with pytest.raises(ValueError, match="threads"):
        LearnedEmbedder(tiny_weights[0], threads=0)
    assert LearnedEmbedder(tiny_weights[0], device="cpu").backend == "onnxruntime"  # the CPU default


def test_default_model_is_small() -> None:
    model = ReidNet()
    assert count_parameters(model) <= 500_000
    out = model.eval()(torch.rand(2, 3, *model.config.input_size), torch.zeros(2))
    assert 64 <= out.shape[1] <= 128
    with pytest.raises(ValueError, match="input_size"):
        ReidNetConfig(input_size=(4, 4))
    with pytest.raises(ValueError, match="embedding_dim"):
        ReidNetConfig(embedding_dim=1)


# -------------------------------------------------------------------------------------- dataset
def test_sightings_and_crops_on_two_frames(tmp_path) -> None:
    ref = WorldRef("reentry", 3)
    world = ref.build()
    rules = SightingRules(box_jitter=0.0)
    seen = world_sightings(world, [0, 300], rules)
    assert len(seen) > 0 and set(seen.frame.tolist()) <= {0, 300} and set(seen.camera.tolist()) <= {0, 1}
    assert np.all(seen.visibility >= rules.min_visibility) and np.all(seen.box[:, 2:] >= rules.min_box_px)
    data = build_identity_crops([ref], frames_per_world=2, rules=rules, size=(16, 8), seed=1)
    assert data.crops.shape[1:] == (16, 8, 3) and len(data.crops) == len(data.identity) == len(data.log_aspect) > 0
    assert data.n_identities == len(world.objects)
    # identities map back to object ids; look-alike newcomers to their original's identity
    for spec in world.objects:
        i = int(np.flatnonzero(data.identity_object == spec.object_id)[0])
        expected = int(np.flatnonzero(data.identity_object == spec.lookalike_of)[0]) if spec.lookalike_of else -1
        assert data.identity_original[i] == expected
    assert (data.identity_original >= 0).sum() == world.config.n_newcomers
    # undisturbed boxes: each crop is the crop of its visible box in its frame
    k, cam = int(data.frame[0]), int(data.camera[0])
    rows = np.flatnonzero((seen.frame == k) & (seen.camera == cam))
    expected_crops, _ = crop_boxes(world.render(k)[cam], seen.box[rows], (16, 8))
    np.testing.assert_array_equal(data.crops[:len(rows)], expected_crops)
    np.testing.assert_allclose(data.log_aspect[:len(rows)],
                               rect_log_aspect(seen.box[rows], world.rig.width, world.rig.height))
    again = build_identity_crops([ref], frames_per_world=2, rules=rules, size=(16, 8), seed=1)
    np.testing.assert_array_equal(again.crops, data.crops)
    data.save(tmp_path / "crops.npz")
    loaded = IdentityCrops.load(tmp_path / "crops.npz")
    assert loaded.worlds == [ref]
    for name in ("crops", "log_aspect", "identity", "camera", "frame", "identity_original"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))


def test_world_and_frame_helpers() -> None:
    worlds = worlds_for_seeds([0, 1], per_seed=3)
    assert [w.seed for w in worlds] == [0, 0, 0, 1, 1, 1] and len({w.scenario for w in worlds}) == 6
    frames = stratified_frames(300, 4, np.random.default_rng(0))
    assert len(frames) == 4 and np.all(np.diff(frames) > 0) and frames[0] < 75 and frames[-1] >= 225
    with pytest.raises(ValueError, match="per_seed"):
        worlds_for_seeds([0], per_seed=7)
    with pytest.raises(ValueError, match="scenario"):
        WorldRef("nope", 0)
    with pytest.raises(ValueError, match="min_visibility"):
        SightingRules(min_visibility=0.0)


def test_probes_are_two_seconds_apart() -> None:
    probes = sample_probes([WorldRef("clean", 1000)], min_gap_s=2.0, frame_stride=10, cross_camera_share=1.0)
    q, g = probes.ordered_rows()
    assert len(q) == len(g) >= 2 and np.all(probes.identity[q] == np.arange(len(q)))
    assert np.all(np.abs(probes.frame[q] - probes.frame[g]) >= 60)
    assert probes.cross_camera.all()  # every object of `clean` is seen by both cameras
    assert np.all(probes.identity_batch == 1000)


# ------------------------------------------------------------------------------------ retrieval
def _probes(n: int, batches: list[int], original: list[int]) -> Probes:
    ids = np.repeat(np.arange(n), 2)
    return Probes(world=np.array(batches)[ids], frame=np.zeros(2 * n, np.int64), camera=np.tile([0, 1], n),
                  box=np.zeros((2 * n, 4)), identity=ids, is_query=np.tile([True, False], n), worlds=[],
                  identity_world=np.array(batches), identity_object=np.arange(n) + 1,
                  identity_original=np.array(original), identity_batch=np.array(batches))


def test_retrieval_scores() -> None:
    probes = _probes(4, [0, 0, 0, 1], [-1, 0, -1, -1])
    eye = np.eye(4, dtype=np.float32)
    perfect = np.repeat(eye, 2, axis=0)
    m = retrieval_metrics(perfect, probes)
    assert m["rank1"] == 1.0 and m["map"] == 1.0 and m["lookalike_to_original"] == 0.0 and m["n_lookalikes"] == 1
    assert m["rank1_cross_camera"] == 1.0 and m["n_batches"] == 2
    constant = np.ones((8, 4), np.float32)
    assert retrieval_metrics(constant, probes)["rank1"] == 0.25  # only the lone identity of batch 1
    # identity 1's query looks like identity 0's gallery entry: rank 2 for it, and a look-alike hit
    swapped = perfect.copy()
    swapped[2] = eye[0]
    m = retrieval_metrics(swapped, probes)
    assert m["rank1"] == 0.75 and m["lookalike_to_original"] == 1.0
    assert m["map"] == pytest.approx((1 + 1 / 3 + 1 + 1) / 4)  # ties with 0 and 2 count against it
    with pytest.raises(ValueError, match="embeddings"):
        retrieval_metrics(perfect[:3], probes)


# ------------------------------------------------------------------------------------- training
def test_batch_hard_triplet_and_identity_batches() -> None:
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), dim=1)
    y = torch.tensor([0, 0, 1, 1])
    assert float(batch_hard_triplet(e, y, 0.3)) == 0.0  # well separated
    assert float(batch_hard_triplet(e, torch.tensor([0, 1, 0, 1]), 0.3)) > 1.0  # wrong labels: large
    data = build_identity_crops([WorldRef("clean", 0), WorldRef("crossing", 1)], frames_per_world=2,
                                size=(8, 8))
    batches = list(identity_batches(data, 4, 3, np.random.default_rng(0)))
    counts = np.bincount(data.identity, minlength=data.n_identities)
    seen = np.concatenate([np.unique(data.identity[b]) for b in batches])
    assert sorted(seen.tolist()) == np.flatnonzero(counts >= 2).tolist()  # each usable identity once
    assert all(len(b) == 3 * len(np.unique(data.identity[b])) for b in batches)


# --- the .onnx export: the detector's torch-free learned embedding ---------------------------------

def test_the_export_embeds_as_the_checkpoint_without_torch(tiny_weights, tmp_path, monkeypatch) -> None:
    import sys

    from object_permanence.core.reid.embedder import export_onnx

    path, model = tiny_weights
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(fuse_for_inference(model), onnx_path)
    img = _image()
    boxes = np.array([[50.0, 40.0, 40.0, 60.0], [150.0, 100.0, 30.0, 30.0], [500.0, 500.0, 10.0, 10.0]])
    expected = LearnedEmbedder(path, "cpu", "torch").embed(img, boxes)
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now fails
    exported = LearnedEmbedder(onnx_path, "auto")
    assert (exported.dim, exported.input_size, exported.backend, exported.device) == (8, (16, 8), "onnxruntime", "cpu")
    np.testing.assert_allclose(exported.embed(img, boxes), expected, atol=1e-5)
    assert not exported.embed(img, boxes)[2].any()


def test_export_refusals_are_named(tiny_weights, tmp_path) -> None:
    import io

    from object_permanence.core.reid.embedder import export_onnx

    path, model = tiny_weights
    fused = fuse_for_inference(model)  # folds the batch norms in place: once
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(fused, onnx_path)
    with pytest.raises(ValueError, match="need the .pt checkpoint"):
        LearnedEmbedder(onnx_path, device="cuda")
    with pytest.raises(ValueError, match="need the .pt checkpoint"):
        LearnedEmbedder(onnx_path, device="cpu", backend="torch")
    with pytest.raises(FileNotFoundError, match="export-reid"):
        LearnedEmbedder(tmp_path / "missing.onnx", device="cpu")
    buffer = io.BytesIO()
    export_onnx(fused, buffer)  # in memory: no metadata
    (tmp_path / "bare.onnx").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="not a re-ID export"):
        LearnedEmbedder(tmp_path / "bare.onnx", device="cpu")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        LearnedEmbedder(tmp_path / "junk.onnx", device="cpu")


def test_export_tool_checks_the_export(tiny_weights, tmp_path) -> None:
    import json

    from object_permanence.tools.export_reid import main

    path, _ = tiny_weights
    report = tmp_path / "check.json"
    assert main(["--weights", str(path), "--out", str(tmp_path / "cli.onnx"), "--frames", "2",
                 "--report", str(report)]) == 0
    got = json.loads(report.read_text())
    assert got["boxes"] > 0 and got["max_abs_diff"] < 1e-5
    assert main(["--weights", str(path), "--out", str(tmp_path / "cli.onnx"), "--frames", "2",
                 "--tolerance", "-1"]) == 1  # a difference is never below a negative tolerance


def test_the_shipped_export_is_the_shipped_checkpoint() -> None:
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "models" / "reid"
    if not (shipped / "reid_net.pt").is_file() or not (shipped / "reid_net.onnx").is_file():
        pytest.skip("the shipped re-ID models are not there")
    img = _image()
    boxes = np.array([[50.0, 40.0, 40.0, 60.0], [150.0, 100.0, 30.0, 30.0]])
    np.testing.assert_allclose(LearnedEmbedder(shipped / "reid_net.onnx", "cpu").embed(img, boxes),
                               LearnedEmbedder(shipped / "reid_net.pt", "cpu", "torch").embed(img, boxes), atol=1e-5)
