"""The world-model benchmark's rows: every tracker timed in every round, ratios against ours."""
from __future__ import annotations

import pytest

from object_permanence.core.world_model import WorldModelConfig
from object_permanence.tools import bench_world_model
from object_permanence.tools.bench_world_model import PEERS, main, run


def test_trackers_take_turns_over_the_rounds(monkeypatch) -> None:
    order = []
    monkeypatch.setattr(bench_world_model, "time_ours",
                        lambda boxes, emb, warmup, config: order.append("ours") or [1.0, 3.0])
    monkeypatch.setattr(bench_world_model, "time_peer",
                        lambda name, boxes, warmup: order.append(name) or [4.0, 4.0, 8.0])
    rows = run([6], frames=3, warmup=1, embedding_dim=4, config=WorldModelConfig(), rounds=2)
    assert order == ["ours", *PEERS] * 2  # interleaved: a slow spell of the machine hits every tracker
    ours, *peers = rows
    assert (ours["tracker"], ours["n"], ours["step_ms_median"], ours["ratio_to_ours"]) == ("ours", 6, 2.0, 1.0)
    assert ours["step_ms_round_medians"] == [2.0, 2.0]
    assert [r["tracker"] for r in peers] == list(PEERS)
    assert all(r["step_ms_median"] == 4.0 and r["ratio_to_ours"] == 2.0 for r in peers)


def test_real_timings_for_a_small_scene() -> None:
    pytest.importorskip("trackers")
    rows = run([5], frames=4, warmup=1, embedding_dim=8, config=WorldModelConfig(), rounds=2)
    assert [r["tracker"] for r in rows] == ["ours", *PEERS]
    assert all(len(r["step_ms_round_medians"]) == 2 and r["step_ms_median"] > 0 for r in rows)


def test_ours_runs_the_configuration_of_config_dir(monkeypatch, tmp_path) -> None:
    """The bench times the world model as shipped (its YAML), not the dataclass defaults."""
    seen = []
    monkeypatch.setattr(bench_world_model, "time_ours",
                        lambda boxes, emb, warmup, config: seen.append(config) or [1.0])
    monkeypatch.setattr(bench_world_model, "time_peer", lambda name, boxes, warmup: [1.0])
    (tmp_path / "world_model.yaml").write_text("world_model:\n  ros__parameters:\n    min_hits: 5\n")
    assert main(["--out", str(tmp_path / "out"), "--sizes", "3", "--frames", "50", "--rounds", "1",
                 "--config-dir", str(tmp_path)]) == 0
    assert [c.min_hits for c in seen] == [5]


def test_a_config_dir_without_the_world_model_file_is_a_usage_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "out"), "--config-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--config-dir" in capsys.readouterr().err
