"""The tracking comparison's report: the markdown tables and the bar-chart figure.

Rows are those of ``tracking.json`` (keys :data:`~object_permanence.core.eval.tracking_eval.ROW_KEYS`);
a ``None`` figure (no samples: e.g. a peer's ghost precision) prints as "—".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Column header and row key of the markdown tables, in order.
COLUMNS = (("tracker", "tracker"), ("HOTA", "hota"), ("IDF1", "idf1"), ("MOTA", "mota"),
           ("ID sw. / 100 fr.", "id_switches_per_100_frames"), ("occl. recovery", "occlusion_recovery_rate"),
           ("reacq. error px", "reacquire_error_px"), ("ghost precision", "ghost_precision"))
#: Figures shown in percent.
PERCENT_KEYS = frozenset({"hota", "idf1", "mota", "occlusion_recovery_rate", "ghost_precision"})
#: The figures whose best value per dataset is printed in bold (higher is better).
BOLD_KEYS = ("hota", "idf1")

DASH = "—"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return DASH
    if key in PERCENT_KEYS:
        return f"{100.0 * value:.1f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def group_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[Mapping[str, Any]]]]:
    """``{difficulty: {dataset: [rows]}}`` in first-seen order."""
    out: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        out.setdefault(row["difficulty"], {}).setdefault(row["dataset"], []).append(row)
    return out


def markdown_tables(rows: Sequence[Mapping[str, Any]], titles: Mapping[str, str] | None = None) -> str:
    """One markdown table per difficulty (in first-seen order), a dataset column first; per
    dataset the best HOTA and IDF1 are bold. ``titles``: a heading per difficulty (default
    ``Difficulty `<name>```). Percent figures (HOTA, IDF1, MOTA, recovery, ghost precision) in %."""
    titles = titles or {}
    parts = []
    for difficulty, datasets in group_rows(rows).items():
        parts.append(f"### {titles.get(difficulty, f'Difficulty `{difficulty}`')}\n")
        parts.append("| dataset | " + " | ".join(h for h, _ in COLUMNS) + " |")
        parts.append("|---|" + "|".join("---" if k == "tracker" else "---:" for _, k in COLUMNS) + "|")
        for dataset, group in datasets.items():
            best = {k: max((r[k] for r in group if r[k] is not None), default=None) for k in BOLD_KEYS}
            for row in group:
                cells = []
                for _, key in COLUMNS:
                    text = _cell(key, row[key])
                    if key in best and row[key] is not None and row[key] == best[key] and len(group) > 1:
                        text = f"**{text}**"
                    cells.append(text)
                parts.append(f"| {dataset} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def plot_identity(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Bar charts of HOTA and IDF1 (%) per dataset and tracker, one row of panels per difficulty;
    written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = group_rows(rows)
    trackers = list(dict.fromkeys(r["tracker"] for r in rows))
    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 3.2 * len(groups)), squeeze=False)
    width = 0.8 / max(len(trackers), 1)
    for (difficulty, datasets), panel in zip(groups.items(), axes):
        names = list(datasets)
        x = np.arange(len(names))
        for ax, key in zip(panel, ("hota", "idf1")):
            for i, tracker in enumerate(trackers):
                values = [next((100.0 * r[key] for r in datasets[d] if r["tracker"] == tracker), np.nan)
                          for d in names]
                ax.bar(x + (i - (len(trackers) - 1) / 2) * width, values, width, label=tracker)
            ax.set_xticks(x, names, rotation=15)
            ax.set_ylim(0, 100)
            ax.set_ylabel(f"{key.upper()} (%)")
            ax.set_title(f"{key.upper()} — {difficulty}")
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8, ncol=len(trackers))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
