"""The robot image's build context (docker/Dockerfile), checked without Docker: every file it
copies exists, and every folder CMake installs is copied (the image did not build when models/
was installed by CMake but not copied), and its pip requirements exist."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"


def _copied_sources() -> list[str]:
    """Source paths of the Dockerfile's ``COPY`` lines (not heredocs, not ``--from`` stages)."""
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or "<<" in line or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_every_copied_path_exists() -> None:
    sources = _copied_sources()
    assert sources, "no COPY line found"
    assert [s for s in sources if not (REPO / s).exists()] == []


def test_every_folder_cmake_installs_is_copied() -> None:
    installs = re.findall(r"install\(DIRECTORY\s+([^)]*?)\s+DESTINATION", (REPO / "CMakeLists.txt").read_text())
    folders = {f for group in installs for f in group.split()}
    assert "models" in folders and "src/object_permanence/core" in folders
    copied = [Path(c) for c in _copied_sources()]
    assert [f for f in sorted(folders) if not any(Path(f) == c or c in Path(f).parents for c in copied)] == []


def test_robot_requirements_leave_the_distribution_numpy_alone() -> None:
    """ROS's Python extensions are built against apt's numpy: the robot requirements must not pin
    numpy, scipy or OpenCV (the Dockerfile and the README hold numpy at the distribution's version)."""
    names = {re.split(r"[=<>\[ ]", line.strip())[0].lower() for line in
             (REPO / "requirements" / "robot.txt").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert names & {"numpy", "scipy", "opencv-python", "opencv-python-headless", "pyyaml"} == set()
    assert {"torch", "onnxruntime", "scikit-learn", "scikit-image"} <= names
