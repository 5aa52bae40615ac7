"""Where the package's shipped models are: the installed share/ folder, else the source tree."""
from __future__ import annotations

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
