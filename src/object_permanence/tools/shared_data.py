"""Where the evaluation tools find the project's real data sets (``shared/data``)."""
from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that points at the shared/data folder.
SHARED_DATA_ENV = "OBJECT_PERMANENCE_SHARED_DATA"


def shared_data_root() -> Path:
    """``$OBJECT_PERMANENCE_SHARED_DATA``, else ``../shared/data`` from the working directory (the
    repository root when run by ``make``)."""
    return Path(os.environ.get(SHARED_DATA_ENV, Path.cwd().parent / "shared" / "data"))
