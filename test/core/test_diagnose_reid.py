"""Tests for tools/diagnose_reid (why a returning object got a new identity)."""
from __future__ import annotations

from pathlib import Path

from object_permanence.tools.diagnose_reid import TESTS, diagnose_run, traced_run
from object_permanence.tools.diagnose_runs import tracked_records

CONFIG = Path(__file__).resolve().parents[2] / "config"
CAUSES = ("passed, not assigned", "old id never in the gallery", "old id no candidate then", "new track never young")


def _published(records, camera: str) -> list[list[tuple]]:
    return [[(t.track_id, t.state, tuple(t.box)) for t in getattr(r, f"tracks_{camera}")] for r in records]


def test_tracing_leaves_the_tracking_unchanged_and_sees_both_cameras() -> None:
    _, plain = tracked_records("cluttered", 11, "realistic", CONFIG, 150)
    traced, traces = traced_run("cluttered", 11, "realistic", CONFIG, 150)
    for camera in ("left", "right"):
        assert _published(traced, camera) == _published(plain, camera)
    assert set(traces) == {"left", "right"}
    for trace in traces.values():
        assert trace.frame == 150  # one world model per camera, every frame counted
        assert trace.tests, "young tracks were tested against candidates"
        for (young, cand), tests in trace.tests.items():
            assert young != cand
            assert all(0 <= f < 150 and set(failed) <= set(TESTS) for f, failed, _ in tests)


def test_every_new_track_switch_gets_a_cause() -> None:
    switches = diagnose_run(("cluttered", 11), "realistic", CONFIG, 200)
    assert switches, "this run has switches to a new track"
    for s in switches:
        assert s["taken_by"] == "new_track"
        failed = s["cause"].removeprefix("fail: ").split("+")
        assert s["cause"] in CAUSES or set(failed) <= set(TESTS)
        assert (s["tested_frame"] is None) == (s["cause"] in CAUSES[1:])

