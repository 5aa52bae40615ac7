"""Why an object back from a gap got a new identity: the re-identification tests, switch by switch.

    python -m object_permanence.tools.diagnose_reid [--scenarios cluttered,noisy] [--seeds 10-29]
        [--out out/diagnose/reid.json] [--workers 2]

Each (scenario, seed) is simulated, detected (``realistic`` unless ``--difficulty``) and tracked by
the shipped world model as ``make eval`` does, with its re-identification stage traced: in every
frame, every young track is tested against every candidate (LOST tracks in the gallery, ghosts) by
:func:`~object_permanence.core.reidentification.reid_candidates`, the very function the stage
decides with. Each CLEAR switch to a track that first appeared after the object's last match
(:mod:`diagnose_switches`' ``new_track``) is then explained by the tests of that new track against
the object's old identity in the frames it was young:

* ``fail: <tests>``: it was a candidate and these tests failed, in the frame that failed fewest
  (``motion``, ``scale``, ``appearance``, ``born_after``, ``vetoed``; ``confirmed`` when those
  all passed but the entry, of fewer hits than ``gallery_min_hits``, waits for a confirmed track:
  ``gallery_confirmed_min_hits``);
* ``passed, not assigned``: every test passed in some frame, and the assignment gave the new track
  another identity or the old one to another track;
* ``old id never in the gallery``: the old track was no candidate while the new one was young
  and never entered the gallery (too few hits: ``gallery_min_hits``, or no look): its identity
  ended with it (checked first: with no candidate at all, the new track was never tested);
* ``old id no candidate then``: it was in the gallery at other times (it left before the new track
  started, taken by another track or forgotten, or entered after the new one was no longer young);
* ``new track never young``: no test of the new track at all, the old one in the gallery at some
  time (it was never a young track while any candidate existed).

Tuning seeds only (< 1000) unless ``--allow-held-out``. Prints the count of each cause per
scenario, by the old track's state at the switch; ``--out`` writes every explained switch as JSON.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from object_permanence.core import world_model
from object_permanence.core.reidentification import ReidCandidates, reid_candidates, reidentify_lost
from object_permanence.core.track_table import LostGallery, TrackTable
from object_permanence.core.world_model_config import WorldModelConfig
from object_permanence.tools.diagnose_runs import tracked_records
from object_permanence.tools.diagnose_switches import classify_switches, gap_class, run_main

TESTS = ("motion", "scale", "appearance", "born_after", "vetoed", "confirmed")


@dataclass
class ReidTrace:
    """The re-identification stage of one camera's run: ``tests[(young id, candidate id)]`` lists
    ``(frame, failed tests, appearance cost)`` for every frame the pair was tested; ``gallery``
    holds every id that was ever in the gallery, ``young`` every young track tested."""

    tests: dict[tuple[int, int], list[tuple[int, list[str], float]]] = field(default_factory=lambda: defaultdict(list))
    gallery: set[int] = field(default_factory=set)
    young: set[int] = field(default_factory=set)
    frame: int = 0

    def record(self, t: TrackTable, g: LostGallery, c: ReidCandidates | None) -> None:
        """Note this frame's gallery and, when there was a test, every pair's failed tests."""
        self.gallery.update(g.ids.tolist())
        if c is None:
            return
        cand_ids = np.concatenate([g.ids, t.ids[c.ghosts]]).tolist()
        passed = np.stack([c.motion, c.scale, c.strict | c.near, c.born_after, ~c.vetoed])  # (5, R, C)
        app = np.nan_to_num(c.app, nan=np.inf)
        for r, young in enumerate(t.ids[c.rows].tolist()):
            self.young.add(young)
            for j, cand in enumerate(cand_ids):
                failed = [name for name, ok in zip(TESTS, passed[:, r, j]) if not ok] \
                    or ([] if c.ok[r, j] else ["confirmed"])  # an entry of few hits, not a confirmed track
                self.tests[(young, cand)].append((self.frame, failed, float(app[r, j])))


def traced_run(scenario: str, seed: int, difficulty: str, config_dir: Path,
               n_frames: int | None) -> tuple[list, dict[str, ReidTrace]]:
    """:func:`diagnose_runs.tracked_records` with the re-identification stage of each camera's
    world model traced (the stage itself unchanged: it is called as in every run)."""
    traces: dict[world_model.WorldModel, ReidTrace] = {}  # one per camera's model, kept alive here
    active: list[ReidTrace] = []

    def traced(t: TrackTable, g: LostGallery, cfg: WorldModelConfig, rows: np.ndarray, stamp: float):
        active[0].record(t, g, reid_candidates(t, g, cfg, rows, stamp))
        return reidentify_lost(t, g, cfg, rows, stamp)

    real_step = world_model.WorldModel.step

    def step(self: world_model.WorldModel, *args, **kwargs):
        active[:] = [traces.setdefault(self, ReidTrace())]
        result = real_step(self, *args, **kwargs)
        active[0].frame += 1
        return result

    with mock.patch.object(world_model, "reidentify_lost", traced), \
            mock.patch.object(world_model.WorldModel, "step", step):
        seq, records = tracked_records(scenario, seed, difficulty, config_dir, n_frames)
    # run_tracker makes one world model per camera, in the order of seq.streams
    return records, dict(zip(seq.streams, traces.values()))


def explain(switch: dict[str, Any], trace: ReidTrace) -> dict[str, Any]:
    """The cause of one ``new_track`` switch (module docstring) and, when tested, the best frame's
    failed tests and appearance cost."""
    new, old = switch["new_track"], switch["old_track"]
    tests = trace.tests.get((new, old), [])
    if tests:
        frame, failed, app = min(tests, key=lambda x: (len(x[1]), x[2]))
        cause = "fail: " + "+".join(failed) if failed else "passed, not assigned"
        return dict(cause=cause, tested_frame=frame, appearance_cost=app)
    if old not in trace.gallery:
        cause = "old id never in the gallery"
    elif new not in trace.young:
        cause = "new track never young"
    else:
        cause = "old id no candidate then"
    return dict(cause=cause, tested_frame=None, appearance_cost=None)


def diagnose_run(job: tuple[str, int], difficulty: str, config_dir: Path, n_frames: int | None) -> list[dict[str, Any]]:
    """Every explained ``new_track`` switch of both cameras of one (scenario, seed)."""
    scenario, seed = job
    records, traces = traced_run(scenario, seed, difficulty, config_dir, n_frames)
    return [dict(scenario=scenario, seed=seed, camera=camera, **s, **explain(s, traces[camera]))
            for camera in ("left", "right") for s in classify_switches(records, camera)
            if s["taken_by"] == "new_track"]


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("diagnose_reid", __doc__, diagnose_run,
                    "ID switches to a new track, seeds {seeds}, {difficulty}, both cameras, "
                    "by (old track then, gap, why the new track did not get the old identity):",
                    lambda s: (f"{s['old_state']:9s}", f"gap {gap_class(s['gap']):4s}", s["cause"]), argv)


if __name__ == "__main__":
    sys.exit(main())
