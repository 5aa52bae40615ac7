"""Learned appearance embeddings: the re-ID network run on every box of an image in one batch.

A drop-in alternative to :class:`~object_permanence.core.appearance.ColorHistogramEmbedder`: the
same ``dim`` property and ``embed(image_bgr, boxes) -> (N, D) float32`` contract (unit rows, the
zero vector for a box with no pixel in the image), so the detector node computes it once per
detection and the world model takes it whatever its dimension.

Two runtimes, one network (batch norms folded into the convolutions):

* ``onnxruntime`` (the CPU default): the network is exported to ONNX in memory at load time and
  run by a session with its *own* thread count (``threads``, 1 by default). On a loaded 2-core
  machine this matters more than anything else: for 20 boxes torch took 0.2-0.7 s with its
  process-wide pool of 2 threads (threads waiting for each other), 8-21 ms with one thread, and
  this session 6-15 ms (measured at load averages of 10-13).
* ``torch`` (the GPU default, or asked for): under ``torch.inference_mode``; it uses the process's
  torch thread settings, which this library never changes.

A ``.onnx`` file written by :func:`export_onnx` (``tools/export_reid``; the shipped
``models/reid/reid_net.onnx``) runs on onnxruntime without torch: the same network, its crop size
and embedding length in the file's metadata.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np

from object_permanence.core.appearance import check_image_and_boxes
from object_permanence.core.onnx_session import cpu_session, open_export
from object_permanence.core.reid.crops import crop_batch, rect_log_aspect

DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "onnxruntime", "torch")


def export_onnx(model, target) -> None:
    """Export the fused re-ID network ``model`` (:func:`model.fuse_for_inference`) to ``target`` (a path
    or a binary buffer) as ONNX: inputs ``crops`` (N, 3, H, W) and ``log_aspect`` (N,), output
    ``embedding`` (N, D), the batch dynamic; a path also gets the crop size and D as metadata."""
    import torch

    h, w = model.config.input_size
    with warnings.catch_warnings():  # the TorchScript exporter (no onnxscript needed) warns it is legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(2, 3, h, w), torch.zeros(2)), target, dynamo=False,
                          input_names=["crops", "log_aspect"], output_names=["embedding"], opset_version=17,
                          dynamic_axes={"crops": {0: "n"}, "log_aspect": {0: "n"}, "embedding": {0: "n"}})
    if isinstance(target, (str, Path)):
        import onnx

        exported = onnx.load(str(target))
        exported.metadata_props.add(key="input_size", value=json.dumps([h, w]))
        exported.metadata_props.add(key="embedding_dim", value=str(model.dim))
        onnx.save(exported, str(target))


class LearnedEmbedder:
    """Appearance embedding of each box by the re-ID network of ``weights``.

    Args:
        weights: checkpoint written by ``python -m object_permanence.tools.train_reid``
            (default location ``models/reid/reid_net.pt``), or its ``.onnx`` export
            (:func:`export_onnx`; onnxruntime on the CPU, no torch).
        device: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu`` or ``cuda``.
        backend: ``auto`` (onnxruntime on the CPU, torch on CUDA), ``onnxruntime`` (CPU only) or
            ``torch``.
        threads: intra-op threads of the onnxruntime session (>= 1; ignored by the torch backend).

    Raises:
        FileNotFoundError: ``weights`` does not exist (the message says how to make it).
        ValueError: a bad device, backend or threads, ``cuda`` without a GPU, onnxruntime asked
            for on CUDA (or an ``.onnx`` file with ``cuda`` or ``torch``), or a file that is not a
            re-ID checkpoint or export.
    """

    def __init__(self, weights: str | Path, device: str = "auto", backend: str = "auto", threads: int = 1) -> None:
        if device not in DEVICES:
            raise ValueError(f"LearnedEmbedder: device must be one of {DEVICES}, got {device!r}")
        if backend not in BACKENDS:
            raise ValueError(f"LearnedEmbedder: backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"LearnedEmbedder: threads must be an integer >= 1, got {threads!r}")
        if str(weights).endswith(".onnx"):
            self._load_export(Path(weights), device, backend, int(threads))
            return
        import torch  # imported here: only the checkpoint needs torch

        from object_permanence.core.reid.model import fuse_for_inference, load_checkpoint

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise ValueError("LearnedEmbedder: device 'cuda' asked for but torch sees no CUDA device")
        if backend == "auto":
            backend = "torch" if device == "cuda" else "onnxruntime"
        if backend == "onnxruntime" and device != "cpu":
            raise ValueError(f"LearnedEmbedder: backend 'onnxruntime' runs on the CPU only, got device {device!r}")
        model, self.meta = load_checkpoint(weights)
        self._torch = torch
        self._model = fuse_for_inference(model).to(device)
        if backend == "onnxruntime":
            buffer = io.BytesIO()
            export_onnx(self._model, buffer)
            self._session = cpu_session(buffer.getvalue(), int(threads))
        else:
            self._session = None
        self.device, self.backend, self.weights = device, backend, str(weights)
        self.input_size: tuple[int, int] = tuple(model.config.input_size)
        self._dim = model.dim

    def _load_export(self, path: Path, device: str, backend: str, threads: int) -> None:
        """The ``.onnx`` path: onnxruntime on the CPU, no torch."""
        if device == "cuda" or backend == "torch":
            raise ValueError(f"LearnedEmbedder: {path} runs on onnxruntime on the CPU; device {device!r} and backend "
                             f"{backend!r} need the .pt checkpoint")
        self._session, meta = open_export(path, threads, "re-ID", ("input_size", "embedding_dim"),
                                          "make export-reid writes it")
        self.meta, self._model, self._torch = {}, None, None
        self.device, self.backend, self.weights = "cpu", "onnxruntime", str(path)
        self.input_size = tuple(int(v) for v in json.loads(meta["input_size"]))
        self._dim = int(meta["embedding_dim"])

    @property
    def dim(self) -> int:
        """Length D of an embedding."""
        return self._dim

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embed each box of one image (all boxes in one network batch).

        Args:
            image_bgr: (H, W, 3) uint8 BGR image.
            boxes: (N, 4) ``cx, cy, w, h`` pixels.

        Returns:
            (N, D) float32, each row L2-normalised. A box that is empty after clipping to the image
            (outside it, zero or negative size, non-finite) gets the zero vector: no appearance,
            which ``association.appearance_cost`` reports as NaN (undefined).

        Raises:
            ValueError: on an image that is not (H, W, 3) uint8 or boxes that are not (N, 4).
        """
        return self.embed_views([image_bgr], [boxes])[0]

    def embed_views(self, images_bgr: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`embed` of several images (e.g. the left and right view of a stereo pair) with one
        network call for all their boxes; returns one (N_i, D) float32 array per image.

        Raises:
            ValueError: as :meth:`embed`, or lists of different lengths.
        """
        if len(images_bgr) != len(boxes):
            raise ValueError(f"embed_views: {len(images_bgr)} images but {len(boxes)} box arrays")
        checked = [check_image_and_boxes(image, b) for image, b in zip(images_bgr, boxes)]
        crops, aspects, valids = [], [], []
        for image, b in zip(images_bgr, checked):
            batch, valid = crop_batch(image, b, self.input_size)
            crops.append(batch[valid])
            aspects.append(rect_log_aspect(b[valid], image.shape[1], image.shape[0]))
            valids.append(valid)
        vectors = self._run(np.concatenate(crops) if crops else np.zeros((0, 3, *self.input_size), np.float32),
                            np.concatenate(aspects) if aspects else np.zeros(0, np.float32))
        out, start = [], 0
        for valid in valids:
            rows = np.zeros((len(valid), self.dim), dtype=np.float32)
            rows[valid] = vectors[start:start + int(valid.sum())]
            start += int(valid.sum())
            out.append(rows)
        return out

    def _run(self, crops: np.ndarray, aspect: np.ndarray) -> np.ndarray:
        """(M, 3, H, W) crops and (M,) log aspects -> (M, D) float32 unit embeddings, one network call."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        crops = np.ascontiguousarray(crops, dtype=np.float32)
        if self._session is not None:
            return self._session.run(None, {"crops": crops, "log_aspect": aspect})[0]
        torch = self._torch
        with torch.inference_mode():
            x, a = torch.from_numpy(crops).to(self.device), torch.from_numpy(aspect).to(self.device)
            return self._model(x, a).float().cpu().numpy()
