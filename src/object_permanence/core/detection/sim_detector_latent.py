"""The latent per-entity processes of the detector simulator, in closed form per frame.

Three processes make the simulated detector behave like a real one over time, all keyed by
(seed, entity id, ...) through counter-based draws (:mod:`.counter_random`), so that any frame is
computed without the frames before it:

* detectability: a two-state (on/off) Markov chain per entity, shared by the two cameras, turned
  into one uniform number per (entity, frame, camera) whose low values fall in the chain's off
  spells. Comparing it with a per-frame miss chance gives misses at exactly that chance, in bursts
  and correlated between the views;
* the persistent confidence level of each entity (a reflection takes its source's, a bit lower);
* class confusion episodes of a few frames.

The chain is generated in blocks of ``BLOCK_FRAMES`` frames: each block starts from the stationary
distribution and draws its spell lengths (geometric: the chain is memoryless) from the key
``(seed, entity, block)``; the state at frame k is that of the spell covering ``k mod BLOCK_FRAMES``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit, logit, ndtr

from object_permanence.core.detection import counter_random as cr
from object_permanence.core.detection.sim_detector_config import CLASS_SIMILARITY, SimulatedDetectorConfig
from object_permanence.core.types import ObjectKind

BLOCK_FRAMES = 64  # frames per independently generated run of the detectability chain
LEVEL_RANGE = (0.02, 0.98)  # persistent levels are kept inside this (logit stays finite)

# one salt per purpose, so that no two processes share draws
(SALT_CHAIN_START, SALT_SPELL_LENGTH, SALT_SPELL, SALT_FRAME, SALT_VIEW, SALT_LOW_LEVEL, SALT_LEVEL,
 SALT_CONFUSION_PHASE, SALT_CONFUSION) = range(100, 109)


def chain_states(config: SimulatedDetectorConfig, ids: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """State of each entity's detectability chain at ``frame``.

    ids: (N,) entity ids. Returns ``off`` (N,) bool (True: in an off spell) and ``spell`` (N,) int,
    the index of the spell covering the frame within its block (a key for per-spell draws).
    Transition chances: leave off = 1 / L_off, leave on = pi / ((1 - pi) L_off), whose stationary
    off share is pi (= burst_off_fraction) and mean off spell L_off (= burst_mean_off_frames).
    """
    pi, mean_off = config.burst_off_fraction, config.burst_mean_off_frames
    block, offset = divmod(int(frame), BLOCK_FRAMES)
    ids = np.asarray(ids, dtype=np.int64)
    start_off = cr.uniform(config.seed, SALT_CHAIN_START, block, ids) < pi  # P(off) = pi (stationary)
    spell_index = np.arange(BLOCK_FRAMES)
    spell_off = start_off[:, None] ^ (spell_index % 2 == 1)[None, :]  # spells alternate (N, B)
    leave_on = pi / ((1.0 - pi) * mean_off)  # q_on = pi q_off / (1 - pi): balance pi q_off = (1 - pi) q_on
    leave = np.where(spell_off, 1.0 / mean_off, leave_on)
    lengths = cr.geometric(cr.uniform(config.seed, SALT_SPELL_LENGTH, block, ids[:, None], spell_index[None, :]),
                           leave, BLOCK_FRAMES)
    ends = np.cumsum(lengths, axis=1)  # spell i covers offsets [ends[i-1], ends[i])
    spell = (ends <= offset).sum(axis=1)
    return spell_off[np.arange(len(ids)), spell], spell


def detectability(config: SimulatedDetectorConfig, ids: np.ndarray, frame: int, camera: int) -> np.ndarray:
    """(N,) uniforms in (0, 1): an entity is missed in a frame when its number is below its miss chance.

    Marginally uniform (so the miss rate equals the miss chance exactly), low in the chain's off
    spells: u = pi v in an off spell, pi + (1 - pi) v in an on spell, with v = Phi(g) uniform and
    g = sqrt(c) g_spell + sqrt(1 - c - d) g_frame + sqrt(d) g_camera (c: miss_spell_coherence,
    d: miss_view_independence); g_spell and g_frame are shared by both cameras.
    """
    ids = np.asarray(ids, dtype=np.int64)
    off, spell = chain_states(config, ids, frame)
    c, d, pi = config.miss_spell_coherence, config.miss_view_independence, config.burst_off_fraction
    block = int(frame) // BLOCK_FRAMES
    g = (np.sqrt(c) * cr.normal(config.seed, SALT_SPELL, block, ids, spell)
         + np.sqrt(max(0.0, 1.0 - c - d)) * cr.normal(config.seed, SALT_FRAME, frame, ids)
         + np.sqrt(d) * cr.normal(config.seed, SALT_VIEW, frame, camera, ids))
    v = ndtr(g)  # v ~ U(0, 1) since g ~ N(0, 1)
    return np.where(off, pi * v, pi + (1.0 - pi) * v)


def confidence_levels(config: SimulatedDetectorConfig, ids: np.ndarray, kinds: np.ndarray,
                      source_ids: np.ndarray) -> np.ndarray:
    """(N,) persistent confidence level of each entity, in LEVEL_RANGE.

    Objects: Beta(confidence_mean) or, for a low_confidence_fraction of them, Beta(low_confidence_mean)
    (both with a + b = level_concentration), drawn once per (seed, id). A reflection takes the
    level of its source (``source_ids``; its own id when the source is unknown, 0) minus
    reflection_score_offset. Glare and false positives: Beta(glare_score_mean) and
    Beta(false_positive_score_mean).
    """
    ids, kinds, source_ids = (np.asarray(a, dtype=np.int64) for a in (ids, kinds, source_ids))
    is_reflection = kinds == int(ObjectKind.REFLECTION)
    level_ids = np.where(is_reflection & (source_ids > 0), source_ids, ids)
    object_like = (kinds == int(ObjectKind.OBJECT)) | is_reflection
    low = cr.uniform(config.seed, SALT_LOW_LEVEL, level_ids) < config.low_confidence_fraction
    mean = np.where(object_like, np.where(low, config.low_confidence_mean, config.confidence_mean),
                    np.where(kinds == int(ObjectKind.GLARE), config.glare_score_mean,
                             config.false_positive_score_mean))
    a, b = mean * config.level_concentration, (1.0 - mean) * config.level_concentration  # E = a / (a + b)
    level = cr.beta(a, b, config.seed, SALT_LEVEL, level_ids)
    level = np.where(is_reflection, level - config.reflection_score_offset, level)
    return np.clip(level, *LEVEL_RANGE)


def frame_scores(config: SimulatedDetectorConfig, levels: np.ndarray, hidden: np.ndarray,
                 noise: np.ndarray) -> np.ndarray:
    """(N,) scores of one frame: logit s = logit(level) + sigma n - drop h.

    levels: (N,) persistent levels; hidden: (N,) hidden fraction 1 - visibility; noise: (N,)
    standard normal draws of this frame and camera.
    """
    return expit(logit(levels) + config.score_frame_noise * noise - config.score_hidden_drop * hidden)


def confused_classes(config: SimulatedDetectorConfig, ids: np.ndarray, class_ids: np.ndarray,
                     frame: int) -> np.ndarray:
    """(N,) class reported for each entity at ``frame``: its own, or a similar one during a
    confusion episode.

    Episodes are drawn per (seed, id, window) with windows of class_confusion_frames frames,
    offset per id by a random phase so that episodes do not start together. Within a window the
    chance of reporting class c as c' is class_confusion_prob * CLASS_SIMILARITY[c, c'].
    Classes outside CLASS_SIMILARITY are never confused.
    """
    ids, class_ids = np.asarray(ids, dtype=np.int64), np.asarray(class_ids, dtype=np.int64)
    if config.class_confusion_prob == 0.0 or ids.size == 0:
        return class_ids.copy()
    length = config.class_confusion_frames
    phase = np.floor(cr.uniform(config.seed, SALT_CONFUSION_PHASE, ids) * length).astype(np.int64)
    u = cr.uniform(config.seed, SALT_CONFUSION, ids, (int(frame) + phase) // length)
    n_classes = CLASS_SIMILARITY.shape[0]
    known = (class_ids >= 0) & (class_ids < n_classes)
    cumulative = np.cumsum(config.class_confusion_prob * CLASS_SIMILARITY[np.where(known, class_ids, 0)], axis=1)
    pick = (u[:, None] >= cumulative).sum(axis=1)  # first class whose cumulative chance exceeds u
    return np.where(known & (pick < n_classes), pick, class_ids)
