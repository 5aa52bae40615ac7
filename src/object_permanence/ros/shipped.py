"""Where the package's shipped models are: the installed share/ folder, else the source tree."""
from __future__ import annotations

from pathlib import Path

PACKAGE = "object_permanence"


def shipped_model(relative: str) -> Path:
    """``share/object_permanence/models/<relative>`` of the installed package, or
    ``models/<relative>`` of the source tree when the package is not installed (tests, tools)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE)) / "models" / relative
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[3] / "models" / relative
