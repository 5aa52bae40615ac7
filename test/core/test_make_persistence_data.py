"""tools/make_persistence_data: the split built by worker processes equals the one built in one."""
from __future__ import annotations

import dataclasses

import numpy as np

from object_permanence.core.persistence.features import StereoConfig
from object_permanence.core.world_model import WorldModelConfig
from object_permanence.tools.make_persistence_data import build_split


def test_workers_give_the_same_split_as_one_process() -> None:
    jobs = [("crossing", None, "crossing"), ("noisy", None, "noisy")]
    args = (jobs, [3, 4], WorldModelConfig(), StereoConfig(), 25)
    one, two = build_split(*args, "one"), build_split(*args, "two", workers=2)
    assert len(one) > 0 and set(one.groups) == {f"{s}-{d}" for s in ("crossing", "noisy") for d in ("realistic", "hard")}
    for field in dataclasses.fields(one):
        np.testing.assert_array_equal(getattr(one, field.name), getattr(two, field.name), err_msg=field.name)
