"""The ONNX Runtime CPU session the small learned models run in (the persistence transformer's and
the re-ID network's exports): a fixed intra-op thread count, so that a model does not fight the
pipeline's other nodes for the cores; and the checks every exported model file gets when it is
opened (the file exists, onnxruntime loads it, its metadata names what it is)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def cpu_session(model: str | bytes, threads: int):
    """An onnxruntime CPU session of a model file or its bytes with ``threads`` intra-op threads (0:
    onnxruntime's default, one per core) and one inter-op thread, operators run in sequence."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def open_export(path: str | Path, threads: int, what: str, keys: Iterable[str], missing_hint: str = ""):
    """``(session, metadata)`` of the exported model file ``path``: a :func:`cpu_session` and the
    file's custom metadata (str -> str), which must hold ``keys``.

    Raises:
        FileNotFoundError: naming ``what`` and the path (plus ``missing_hint``: how to make it).
        ImportError: onnxruntime is not installed (not a file onnxruntime cannot load).
        ValueError: naming the file, when onnxruntime cannot load it, or when its metadata lacks
            ``keys`` (it is not a ``what`` export).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} weights not found: {path}" + (f" ({missing_hint})" if missing_hint else ""))
    import onnxruntime  # noqa: F401 -- missing, it is an ImportError, not a file onnxruntime cannot load

    try:
        session = cpu_session(str(path), threads)
    except Exception as exc:  # onnxruntime's own error types (invalid protobuf, graph, ...)
        raise ValueError(f"{path}: onnxruntime cannot load it: {exc}") from exc
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [key for key in keys if key not in meta]
    if missing:
        raise ValueError(f"{path}: not a {what} export (metadata {missing} missing)")
    return session, meta
