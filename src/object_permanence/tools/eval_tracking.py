"""`make eval`: our world model against the best open trackers, on the same detections.

Every simulated scenario x held-out seeds x detector difficulty (``realistic``, ``hard``), plus
real ground truth (TUD-Campus, perturbed into detections with dropout windows, jitter and clutter;
:mod:`object_permanence.core.eval.tud_campus`; 60 perturbation seeds of its own, ``--tud-seeds``:
one 71-frame sequence varies from seed to seed by more than the trackers differ). Per sequence and
camera the detections are written as a MOTChallenge sequence under ``<out>/detections/`` and read
back; ours (the shipped ``config/world_model.yaml``) and the peers of ``trackers`` (SORT,
ByteTrack, OC-SORT, BoT-SORT with the thresholds of ``config/eval_peers.yaml``) run on exactly
those detections and are scored by the shared metrics; see :mod:`object_permanence.core.eval.tracking_eval` for the figures.

    python -m object_permanence.tools.eval_tracking --out out/eval [--seeds 1000-1019]
        [--scenarios clean,crossing] [--difficulties realistic,hard] [--frames N] [--workers 2]
        [--tud-seeds 1000-1059 | --no-tud] [--embedding colour_histogram|learned]

``--scenarios none`` runs TUD-Campus alone (e.g. its tuning seeds: ``--scenarios none --tud-seeds 0-59``).

Each simulated detection carries the appearance embedding of its box in the rendered image that
the detector node would compute with ``config/detector.yaml`` (``embedding``: the colour histogram
by default; ``--embedding learned`` the re-ID network of ``--embedding-weights``).

Every tracker is also judged on re-entry (:mod:`object_permanence.core.eval.reentry`): the share of
returns after >= 2 s out of view that keep their identity and the share of look-alike newcomers
(the simulator's objects with ``lookalike_of``) wrongly given an old one (row keys
:data:`~object_permanence.core.eval.reentry.REENTRY_KEYS`, a table of its own in ``tracking.md``).

Writes ``tracking.json`` (one row per dataset, difficulty and tracker), ``tracking.md``,
``tracking.png``, ``sequences.json`` (every sequence's figures and counts), the detections and
ground truth as MOTChallenge sequences (``detections/<seq>-<camera>/``: ``seqinfo.ini``,
``det/det.txt``, ``gt/gt.txt``, and ``detections/seqmaps/OP-all.txt``), every tracker's output
(``tracks/<tracker>/data/<seq>-<camera>.txt``) and our ghosts (``ghosts/ours/``). TrackEval's
``MotChallenge2DBox`` re-scores them as they are (GT_FOLDER ``detections``, TRACKERS_FOLDER
``tracks``, BENCHMARK ``OP``, SPLIT_TO_EVAL ``all``, SKIP_SPLIT_FOL); ``mot_track`` re-runs ours on a
``det/det.txt`` (without appearance: the embeddings are not in the file).

``--tune-peers`` instead picks the peers' thresholds on tuning seeds (0-999 only; default 0-4,
``realistic``) over a small grid and writes ``config/eval_peers.yaml`` with how it was produced.
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from object_permanence.core.appearance import ColorHistogramEmbedder, Embedder
from object_permanence.core.eval.mot import track_rows
from object_permanence.core.eval.mot_io import MotTrackRow, write_mot_tracks
from object_permanence.core.eval.peer_tuning import tune_peers
from object_permanence.core.eval.records import CameraIndex
from object_permanence.core.eval.reentry import ReentryCounts, add_reentry_columns, reentry_counts, reentry_markdown
from object_permanence.core.eval.peers import (
    ACTIVATION_VALUES,
    IOU_VALUES,
    LOST_BUFFER_VALUES,
    OURS,
    PEER_NAMES,
    TRACKER_NAMES,
    make_tracker,
    peer_grid,
    read_peer_params,
)
from object_permanence.core.eval.sequences import (
    DIFFICULTIES,
    CameraStream,
    EvalSequence,
    reload_detections,
    simulate_sequences,
    write_seqmap,
    write_sequence,
)
from object_permanence.core.eval.tracking_eval import (
    SequenceScore,
    build_records,
    rows_from_scores,
    run_tracker,
    score_run,
)
from object_permanence.core.eval.tracking_report import markdown_tables, plot_identity
from object_permanence.core.eval.tud_campus import DATASET as TUD_DATASET
from object_permanence.core.eval.tud_campus import DIFFICULTY as TUD_DIFFICULTY
from object_permanence.core.eval.tud_campus import tud_sequence
from object_permanence.core.parameters import build_config, node_parameters
from object_permanence.core.sim.scenarios import SCENARIOS, make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import Track, TrackState
from object_permanence.core.world_model import WorldModelConfig
from object_permanence.tools.shared_data import SHARED_DATA_ENV, shared_data_root

#: Seeds >= this are held out: never used for tuning (DESIGN.md, held-out protocol).
HELD_OUT_SEED = 1000
#: World seeds of a default run (held out: from HELD_OUT_SEED on). 20: five seeds gave 37 occlusion
#: episodes of at most 30 frames (the bar's, one episode = 2.7 points) and 20 look-alike newcomers;
#: 20 seeds give about 190 and 80 (session 37).
EVAL_SEEDS = 20
#: TUD-Campus perturbation seeds of a default run (held out: from HELD_OUT_SEED on).
TUD_SEEDS = 60
TUD_RELATIVE = Path("mot") / "TUD-Campus" / "gt.txt"
DEFAULT_WORKERS = max(1, min(2, os.cpu_count() or 1))
#: The sub-folders of ``--out`` an eval run rewrites from scratch (no stale sequence survives).
RAW_FOLDERS = ("detections", "tracks", "ghosts")


def parse_seeds(text: str) -> list[int]:
    """``"1000-1004"`` or ``"0,3,7"`` (or a mix) -> sorted unique non-negative seeds.

    Raises:
        ValueError: anything else, or an empty range.
    """
    seeds: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, _, high = part.partition("-")
            first, last = int(low), int(high) if high else int(low)
            if first < 0 or last < first:
                raise ValueError
            seeds.update(range(first, last + 1))
    except ValueError:
        raise ValueError(f"seeds must look like 1000-1004 or 0,3,7 (non-negative, ranges ascending), "
                         f"got {text!r}") from None
    if not seeds:
        raise ValueError(f"no seed in {text!r}")
    return sorted(seeds)


def _names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ValueError(f"{what} must be a comma-separated list of {list(allowed)}, got {text!r}")
    return names


def shipped_world_model_config(config_dir: Path) -> WorldModelConfig:
    """``WorldModelConfig`` from ``config_dir/world_model.yaml``, built as the world_model node
    builds it (its ``ros__parameters`` through ``core.parameters.build_config``): eval measures what ships.

    Raises:
        ValueError: the file lacks the node's block or holds a bad value. OSError: unreadable.
    """
    return build_config(WorldModelConfig, node_parameters(config_dir, "world_model"))


def shipped_embedding_bins(config_dir: Path) -> tuple[int, int, int]:
    """The detector node's ``embedding_bins`` from ``config_dir/detector.yaml`` (the appearance
    embedding our world model re-identifies with), validated as the embedder validates them.

    Raises:
        ValueError: missing block, or not three positive integers. OSError: unreadable.
    """
    bins = node_parameters(config_dir, "detector").get("embedding_bins", [8, 4, 4])
    return ColorHistogramEmbedder(bins=tuple(bins)).bins


#: Appearance embeddings the detector node computes (its ``embedding`` parameter).
EMBEDDINGS = ("colour_histogram", "learned")


def default_tud_path() -> Path:
    """TUD-Campus ground truth in the shared data folder (``$OBJECT_PERMANENCE_SHARED_DATA`` or
    ``../shared/data`` from the working directory, the repository root under ``make``)."""
    return shared_data_root() / TUD_RELATIVE


def _track_file_rows(frames: list[list[Track]], state: TrackState) -> list[MotTrackRow]:
    """MOTChallenge rows of the tracks in ``state``, exactly the boxes the metrics score."""
    rows = []
    for k, tracks in enumerate(frames):
        r = track_rows(tracks, state)
        rows += [MotTrackRow(k + 1, track_id, *box, score)
                 for track_id, box, score in zip(r.ids.tolist(), r.xywh.tolist(), r.conf.tolist())]
    return rows


@dataclass(frozen=True)
class RunResult:
    """One tracker on one sequence: the shared figures and the re-entry counts (all cameras)."""

    score: SequenceScore
    reentry: ReentryCounts


def lookalike_newcomers(scenario: str, seed: int) -> tuple[int, ...]:
    """Ids of the look-alike newcomers of the simulated world ``scenario`` with ``seed`` (its plan
    only: the textures do not change it, so the cheap synthetic ones are drawn)."""
    world = SimWorld(replace(make_scenario(scenario), textures="synthetic"), seed=seed)
    return tuple(spec.object_id for spec in world.objects if spec.lookalike_of)


def sequence_reentry(seq: EvalSequence, tracks: dict[str, list[list[Track]]],
                     newcomers: Sequence[int] = ()) -> ReentryCounts:
    """Re-entry counts of one tracker's ``tracks`` on ``seq``, summed over its cameras."""
    records = build_records(seq, tracks)
    total = ReentryCounts()
    for cam in seq.streams:
        total += reentry_counts(records, cam, seq.fps, newcomers, index=CameraIndex(records, cam))
    return total


def evaluate_sequence(seq: EvalSequence, trackers: Sequence[str], wm_config: WorldModelConfig,
                      peer_params: dict[str, dict[str, Any]], out: Path | None,
                      newcomers: Sequence[int] = ()) -> list[RunResult]:
    """Write ``seq``'s detections and ground truth, read them back, run and score each tracker,
    write its tracks (``tracks/<tracker>/data/``, TrackEval's layout) and ghosts (``ghosts/<tracker>/``,
    ours only: the peers have none); returns one result per tracker. ``out`` None: nothing is
    written (the detections are then used as simulated). ``newcomers``: the look-alike ids."""
    if out is not None:
        folders = write_sequence(seq, out / "detections")
        seq = reload_detections(seq, folders)
    results = []
    for name in trackers:
        tracks = run_tracker(seq, lambda: make_tracker(name, wm_config, peer_params, seq.fps))
        results.append(RunResult(score_run(seq, name, tracks), sequence_reentry(seq, tracks, newcomers)))
        if out is None:
            continue
        for cam, frames in tracks.items():
            for folder, state in ((out / "tracks" / name / "data", TrackState.VISIBLE),
                                  (out / "ghosts" / name, TrackState.OCCLUDED)):
                if state == TrackState.OCCLUDED and name != OURS:
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                write_mot_tracks(folder / f"{folders[cam].name}.txt", _track_file_rows(frames, state), exact=True)
    return results


@dataclass(frozen=True)
class EvalSetup:
    """What every sequence of one run shares: trackers, their configurations, output folder,
    difficulties of the simulated detector, frames per sequence (None: full length) and the
    appearance embedding (the detector node's ``embedding``: ``colour_histogram`` with
    ``embedding_bins``, or ``learned`` with the re-ID weights ``embedding_weights``)."""

    trackers: tuple[str, ...]
    wm_config: WorldModelConfig
    peer_params: dict[str, dict[str, Any]]
    out: Path
    difficulties: tuple[str, ...]
    frames: int | None
    embedding_bins: tuple[int, int, int] = (8, 4, 4)
    embedding: str = "colour_histogram"
    embedding_weights: Path = Path("models/reid/reid_net.pt")

    def embedder(self) -> Embedder:
        """A new embedder of this setup (one per job: an onnxruntime session is not shared across forks)."""
        if self.embedding == "learned":
            from object_permanence.core.reid.embedder import LearnedEmbedder  # needs torch and onnxruntime

            return LearnedEmbedder(self.embedding_weights, device="cpu", threads=1)
        return ColorHistogramEmbedder(bins=self.embedding_bins)


@dataclass(frozen=True)
class EvalJob:
    """One unit of work: a simulated ``scenario`` (every difficulty, the world rendered once) or,
    with ``tud`` set, TUD-Campus perturbed with ``seed``."""

    seed: int
    scenario: str = ""
    tud: Path | None = None


def run_job(setup: EvalSetup, job: EvalJob) -> list[RunResult]:
    """Evaluate every tracker on the sequence(s) of ``job``."""
    if job.tud is not None:
        seq = tud_sequence(job.tud, job.seed)
        if setup.frames is not None and setup.frames < seq.n_frames:
            seq.streams = {c: CameraStream(s.detections[:setup.frames], s.truth[:setup.frames])
                           for c, s in seq.streams.items()}
        sequences, newcomers = [seq], ()
    else:
        sequences = list(simulate_sequences(job.scenario, job.seed, setup.difficulties, setup.frames,
                                            embedder=setup.embedder()).values())
        newcomers = lookalike_newcomers(job.scenario, job.seed)
    return [result for seq in sequences for result in evaluate_sequence(
        seq, setup.trackers, setup.wm_config, setup.peer_params, setup.out, newcomers)]


def run_jobs(setup: EvalSetup, jobs: Sequence[EvalJob], workers: int) -> list[RunResult]:
    """Run ``jobs``, in ``workers`` forked processes when > 1, with a progress bar; the scores
    come back sorted by dataset, difficulty, seed and tracker."""
    scores: list[RunResult] = []
    work = functools.partial(run_job, setup)
    with tqdm(total=len(jobs), desc="eval sequences", unit="job", disable=None) as bar:
        if workers <= 1:
            results = map(work, jobs)
        else:
            pool = multiprocessing.get_context("fork").Pool(workers)
            results = pool.imap_unordered(work, jobs)
        try:
            for result in results:
                scores += result
                bar.update()
        finally:
            if workers > 1:
                pool.close()
                pool.join()
    # the order the workers finish in must not change a figure (float sums) or the files
    return sorted(scores, key=lambda r: (r.score.dataset, r.score.difficulty, r.score.seed, r.score.tracker))


def _span(seeds: Sequence[int]) -> str:
    return f"seeds {seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"


def _titles(seeds: Sequence[int], frames: int | None, tud_seeds: Sequence[int]) -> dict[str, str]:
    length = f"{frames} frames" if frames else "full length"
    titles = {d: f"Simulated scenarios, `{d}` detector ({_span(seeds)}, both cameras, {length})"
              for d in DIFFICULTIES}
    titles[TUD_DIFFICULTY] = (f"Real ground truth: TUD-Campus (640x480, 25 fps, 71 frames) with dropout windows "
                              f"of 1–30 frames for 1/3 of the identities, 3% jitter, 5% clutter "
                              f"({_span(tud_seeds) if tud_seeds else 'not run'})")
    return titles


def write_report(rows: list[dict[str, Any]], results: Sequence[RunResult], out: Path, seeds: Sequence[int],
                 frames: int | None, command: str, elapsed_s: float, tud_seeds: Sequence[int] = ()) -> None:
    """``tracking.json``, ``sequences.json``, ``tracking.md`` and ``tracking.png`` in ``out``."""
    (out / "tracking.json").write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (out / "sequences.json").write_text(json.dumps([{**asdict(r.score), "reentry": asdict(r.reentry)}
                                                    for r in results], indent=1, allow_nan=False) + "\n",
                                        encoding="utf-8")
    warning = "" if min([*seeds, *tud_seeds]) >= HELD_OUT_SEED else (
        f"**Not a held-out figure: seeds below {HELD_OUT_SEED} are tuning seeds.**\n\n")
    header = (f"# Tracking: our world model vs. `trackers` 2.6.1 on the same detections\n\n{warning}"
              f"`{command}` — {elapsed_s / 60:.1f} min. HOTA, IDF1, MOTA, occlusion recovery and ghost "
              f"precision in %; — where a tracker has no samples (the peers publish no ghosts). "
              f"Bold: best HOTA / IDF1 per dataset.\n\n")
    (out / "tracking.md").write_text(header + markdown_tables(rows, _titles(seeds, frames, tud_seeds)) + "\n"
                                     + reentry_markdown(rows), encoding="utf-8")
    plot_identity(rows, out / "tracking.png")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eval_tracking", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/eval"), help="output folder (default out/eval)")
    parser.add_argument("--seeds", default=None,
                        help=f"world seeds, e.g. {HELD_OUT_SEED}-{HELD_OUT_SEED + EVAL_SEEDS - 1} (default; >= {HELD_OUT_SEED}: "
                        "held out) or, with "
                        "--tune-peers, 0-4 (default; must be < 1000)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated (default: all); none: TUD-Campus only")
    parser.add_argument("--difficulties", default=None,
                        help="detector difficulties (default realistic,hard; realistic with --tune-peers)")
    parser.add_argument("--frames", type=int, default=None, help="frames per sequence (default: full length)")
    parser.add_argument("--trackers", default=None,
                        help=f"comma-separated subset of {','.join(TRACKER_NAMES)} (default: all)")
    parser.add_argument("--tud", type=Path, default=None,
                        help=f"TUD-Campus gt.txt (default: ${SHARED_DATA_ENV} or ../shared/data, + {TUD_RELATIVE})")
    parser.add_argument("--no-tud", action="store_true", help="leave the real sequence out")
    parser.add_argument("--tud-seeds", default=None,
                        help=f"perturbation seeds of TUD-Campus (default "
                        f"{HELD_OUT_SEED}-{HELD_OUT_SEED + TUD_SEEDS - 1}: a 71-frame sequence is cheap, and its figures vary from seed to seed by more than the "
                        "trackers differ)")
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="folder of world_model.yaml and eval_peers.yaml (default ./config)")
    parser.add_argument("--embedding", choices=EMBEDDINGS, default=None,
                        help="appearance embedding of the simulated detections (default: the detector node's "
                             "`embedding` in <config-dir>/detector.yaml)")
    parser.add_argument("--embedding-weights", type=Path, default=None,
                        help="re-ID weights for --embedding learned (default: the detector node's "
                             "`embedding_weights`, else models/reid/reid_net.pt)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"processes (default {DEFAULT_WORKERS}: this machine's cores, at most 2)")
    parser.add_argument("--tune-peers", action="store_true",
                        help="tune the peers' thresholds on tuning seeds and write <config-dir>/eval_peers.yaml")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code (2: bad arguments or inputs)."""
    parser = _parser()
    args = parser.parse_args(argv)
    command = "python -m object_permanence.tools.eval_tracking " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:])
    try:
        seeds = parse_seeds(args.seeds or ("0-4" if args.tune_peers else f"{HELD_OUT_SEED}-{HELD_OUT_SEED + EVAL_SEEDS - 1}"))
        tud_seeds = parse_seeds(args.tud_seeds or f"{HELD_OUT_SEED}-{HELD_OUT_SEED + TUD_SEEDS - 1}")
        scenarios = [] if args.scenarios.strip() == "none" else _names(args.scenarios, list(SCENARIOS), "--scenarios")
        if not scenarios and (args.tune_peers or args.no_tud):
            raise ValueError("--scenarios none leaves nothing to run without TUD-Campus (or with --tune-peers)")
        difficulties = _names(args.difficulties or ("realistic" if args.tune_peers else "realistic,hard"),
                              DIFFICULTIES, "--difficulties")
        if args.tune_peers and args.trackers is not None:
            raise ValueError("--tune-peers tunes every peer (eval_peers.yaml holds them all); leave out --trackers")
        trackers = _names(args.trackers, TRACKER_NAMES, "--trackers") if args.trackers else \
            list(PEER_NAMES if args.tune_peers else TRACKER_NAMES)
    except ValueError as exc:
        parser.error(str(exc))
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.tune_peers:
        if seeds[-1] >= HELD_OUT_SEED:
            parser.error(f"--tune-peers uses tuning seeds only (< {HELD_OUT_SEED}); got {seeds[-1]}")
        return _tune(args, command, seeds, scenarios, difficulties, trackers)
    return _evaluate(args, command, seeds, scenarios, difficulties, trackers, tud_seeds)


def _evaluate(args: argparse.Namespace, command: str, seeds: list[int], scenarios: list[str],
              difficulties: list[str], trackers: list[str], tud_seeds: list[int]) -> int:
    try:
        wm_config = shipped_world_model_config(args.config_dir)
        bins = shipped_embedding_bins(args.config_dir)
        detector = node_parameters(args.config_dir, "detector")
        embedding = args.embedding or detector.get("embedding", "colour_histogram")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"detector.yaml: embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        weights = args.embedding_weights or Path(detector.get("embedding_weights") or "models/reid/reid_net.pt")
        if embedding == "learned" and not weights.is_file():
            raise ValueError(f"re-ID weights {weights} not found (make train-reid makes them)")
        peers_file = args.config_dir / "eval_peers.yaml"
        peer_params = read_peer_params(yaml.safe_load(peers_file.read_text(encoding="utf-8")) or {}) \
            if set(trackers) & set(PEER_NAMES) else {}
    except (OSError, ValueError) as exc:
        print(f"eval_tracking: error: {exc}", file=sys.stderr)
        return 2
    tud = None if args.no_tud else (args.tud or default_tud_path())
    if tud is not None and not tud.is_file():
        print(f"eval_tracking: error: TUD-Campus ground truth not found at {tud} (set --tud, "
              f"${SHARED_DATA_ENV}, or --no-tud)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in RAW_FOLDERS:
        shutil.rmtree(args.out / name, ignore_errors=True)
    setup = EvalSetup(tuple(trackers), wm_config, peer_params, args.out, tuple(difficulties), args.frames, bins,
                      embedding, weights)
    jobs = [EvalJob(seed, scenario=s) for s in scenarios for seed in seeds]
    tud_seeds = tud_seeds if tud is not None else []
    jobs += [EvalJob(seed, tud=tud) for seed in tud_seeds]
    start = time.perf_counter()
    results = run_jobs(setup, jobs, args.workers)
    write_seqmap(args.out / "detections")
    elapsed = time.perf_counter() - start
    rows = rows_from_scores([r.score for r in results], trackers, (*DIFFICULTIES, TUD_DIFFICULTY),
                            (*SCENARIOS, TUD_DATASET))
    add_reentry_columns(rows, [(r.score.dataset, r.score.difficulty, r.score.tracker, r.reentry) for r in results])
    write_report(rows, results, args.out, seeds, args.frames, command, elapsed, tud_seeds)
    print(markdown_tables(rows, _titles(seeds, args.frames, tud_seeds)))
    print(reentry_markdown(rows))
    print(f"eval_tracking: {len(results)} runs in {elapsed / 60:.1f} min; wrote {args.out / 'tracking.json'}, "
          f"tracking.md, tracking.png", file=sys.stderr)
    return 0


def _tune(args: argparse.Namespace, command: str, seeds: list[int], scenarios: list[str],
          difficulties: list[str], peers: list[str]) -> int:
    sequences = [seq for s in tqdm(scenarios, desc="simulating", unit="scenario", disable=None) for seed in seeds
                 for seq in simulate_sequences(s, seed, difficulties, args.frames, embed=False).values()]
    with tqdm(total=len(peers) * (1 + len(list(peer_grid(peers[0])))), desc="tuning the peers", unit="setting",
              disable=None) as bar:
        results = tune_peers(sequences, peers, args.workers, on_setting=bar.update)
    path = args.config_dir / "eval_peers.yaml"
    document = {
        "tuning": {"command": command, "seeds": seeds, "scenarios": scenarios, "difficulties": difficulties,
                   "frames": args.frames or "full length",
                   "objective": "mean over sequences of (HOTA + IDF1) / 2, cameras averaged",
                   "grid": {"activation_threshold": list(ACTIVATION_VALUES), "minimum_iou": list(IOU_VALUES),
                            "lost_track_buffer": list(LOST_BUFFER_VALUES),
                            "parameter_names": "ACTIVATION_PARAM and IOU_PARAM in core/eval/peers.py"},
                   "objective_of_library_defaults": {p: round(results[p].default_objective, 4) for p in peers},
                   "objective_of_chosen": {p: round(results[p].objective, 4) for p in peers}},
        "peers": {p: results[p].params for p in peers},
    }
    header = ("# Thresholds of the peer trackers (trackers 2.6.1) in `make eval`, tuned for the simulated\n"
              "# detector on tuning seeds only (held-out protocol: eval uses seeds >= 1000 and TUD-Campus).\n"
              "# Produced by the command under tuning.command; do not edit by hand, re-run it.\n")
    path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    print(yaml.safe_dump(document["tuning"], sort_keys=False))
    print(f"eval_tracking: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
