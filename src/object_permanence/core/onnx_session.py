"""The ONNX Runtime CPU session the small learned models run in (the persistence transformer's and
the re-ID network's exports): a fixed intra-op thread count, so that a model does not fight the
pipeline's other nodes for the cores."""
from __future__ import annotations


def cpu_session(model: str | bytes, threads: int):
    """An onnxruntime CPU session of a model file or its bytes with ``threads`` intra-op threads (0:
    onnxruntime's default, one per core) and one inter-op thread, operators run in sequence."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
