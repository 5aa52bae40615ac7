"""Where the package's shipped models are (the installed share/ folder, else the source tree), and
which of a model's shipped files suits the device: the ONNX export on the CPU, the torch checkpoint
on CUDA."""
from __future__ import annotations

import glob
import importlib.util
from pathlib import Path

PACKAGE = "object_permanence"


def shipped_model(relative: str) -> Path:
    """``share/object_permanence/models/<relative>`` of the installed package, or
    ``models/<relative>`` of the source tree when the package is not installed (tests, tools)."""
    return _shipped("models") / relative


def shipped_config_dir() -> Path:
    """``share/object_permanence/config`` of the installed package, or the source tree's ``config``."""
    return _shipped("config")


def _shipped(folder: str) -> Path:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE)) / folder
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[3] / folder


#: Device files of NVIDIA GPUs (desktop and server drivers; Jetson's integrated GPU).
GPU_DEVICE_FILES = ("/dev/nvidia[0-9]*", "/dev/nvhost-ctrl-gpu")


def on_cuda(device: str) -> bool:
    """Whether a shipped learned model should run on CUDA (its torch checkpoint) rather than on the CPU
    (its ONNX export, the faster there): ``cuda``, or ``auto`` where an NVIDIA GPU's device file
    exists and torch sees the GPU. Without such a file torch is not imported: it would add about
    0.5 GB to the process for nothing (the composed pipeline: 894 -> 360 MB)."""
    if device == "cuda":
        return True
    if device != "auto" or importlib.util.find_spec("torch") is None:
        return False
    if not any(glob.glob(pattern) for pattern in GPU_DEVICE_FILES):
        return False
    import torch

    return torch.cuda.is_available()
