"""Suite-wide test set-up: the real data sets of ``../shared/data`` and the ROS requirement.

* Tests that read real data take the ``shared_data`` fixture: where the folder is missing they
  fail with a message saying where it was looked for (real data is part of the suite, not optional).
* Inside ``make test`` (``OBJECT_PERMANENCE_REQUIRE_ROS=1``) a missing rclpy or unbuilt interfaces
  stop the run with an error instead of letting the ROS tests skip: a green suite must have run them.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

#: ``shared/data`` beside the repository (``../shared/data`` from the repo root); overridable.
SHARED_DATA = Path(os.environ.get("OBJECT_PERMANENCE_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def shared_data_path(*parts: str) -> Path:
    """``SHARED_DATA / parts``; fails the calling test with a clear message when it does not exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"real test data missing: {path} (expected the project's shared/data folder beside the "
                    "repository, or set OBJECT_PERMANENCE_SHARED_DATA)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``shared/data`` folder (fails, not skips, when it is missing)."""
    return shared_data_path()


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("OBJECT_PERMANENCE_REQUIRE_ROS") != "1":
        return
    for module in ("rclpy", "object_permanence.msg"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise pytest.UsageError(
                f"OBJECT_PERMANENCE_REQUIRE_ROS=1 (make test) but {module} cannot be imported ({exc}); "
                "the ROS tests would be skipped. Run `make setup` (it builds the interfaces) or unset the "
                "variable to run the core tests alone.") from exc
