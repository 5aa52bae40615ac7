"""Training of the re-ID network: cross-entropy over identities plus a batch-hard triplet loss.

Batches are P identities x K crops. They are filled world by world (every identity of a world
joins the batch together), so an object meets the other objects of its own scene in the batch,
and a look-alike newcomer its original: the hardest negatives are in the batch by construction.

* Cross-entropy over all training identities with a cosine classifier and an additive margin
  (CosFace): ``logit_ij = s (cos(e_i, w_j) - m [j = y_i])``; the class weights are thrown away
  after training.
* Batch-hard triplet: per anchor the farthest positive and the nearest negative in the batch,
  ``max(0, d(a, p) - d(a, n) + margin)`` on Euclidean distances of the unit embeddings.

Early stopping on the validation rank-1 of the probe protocol (:mod:`retrieval`); the best
epoch's weights are kept. Deterministic for a seed on one CPU thread (the caller seeds torch before
building the network, sets threads and ``torch.use_deterministic_algorithms``; this module seeds the
classifier head and the batch order from ``config.seed`` and changes no other process-wide setting).

Needs torch.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from object_permanence.core.reid.crops import to_network_input
from object_permanence.core.reid.dataset import IdentityCrops, Probes
from object_permanence.core.reid.model import ReidNet
from object_permanence.core.reid.retrieval import retrieval_metrics


@dataclass(frozen=True)
class TrainingConfig:
    """Knobs of :func:`train`. P identities x K crops per batch; lr: AdamW peak learning rate
    (cosine decay over ``max_epochs``); ce_scale / ce_margin: s / m of the cosine classifier;
    triplet_margin, triplet_weight: the triplet term and its weight against the cross-entropy;
    patience: epochs without a better validation rank-1 before stopping; seed: shuffling and init."""

    max_epochs: int = 30
    identities_per_batch: int = 32
    crops_per_identity: int = 4
    lr: float = 3e-3
    weight_decay: float = 5e-4
    ce_scale: float = 30.0
    ce_margin: float = 0.2
    triplet_margin: float = 0.3
    triplet_weight: float = 1.0
    patience: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_epochs", "identities_per_batch", "crops_per_identity", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if "per" in name else 1):
                raise ValueError(f"TrainingConfig: {name} must be an integer >= {2 if 'per' in name else 1}, "
                                 f"got {value!r}")
        for name in ("lr", "ce_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainingConfig: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "ce_margin", "triplet_margin", "triplet_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrainingConfig: {name} must be >= 0, got {getattr(self, name)!r}")

    def as_dict(self) -> dict:
        return asdict(self)


class CosineClassifier(nn.Module):
    """Additive-margin cosine softmax over ``n_classes`` identities (CosFace)."""

    def __init__(self, dim: int, n_classes: int, scale: float, margin: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) / math.sqrt(dim))
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of unit (B, D) embeddings with (B,) labels."""
        cos = embeddings @ nn.functional.normalize(self.weight, dim=1).T  # cos_ij = e_i . w_j / |w_j|
        logits = self.scale * (cos - self.margin * nn.functional.one_hot(labels, cos.shape[1]))
        return nn.functional.cross_entropy(logits, labels)


def batch_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over anchors of max(0, max_p d(a, p) - min_n d(a, n) + margin); (B, D) unit rows, (B,) labels."""
    gram = embeddings @ embeddings.T
    dist = torch.sqrt(torch.clamp(2.0 - 2.0 * gram, min=1e-12))  # |a - b| = sqrt(2 - 2 a.b) for unit vectors
    same = labels[:, None] == labels[None, :]
    hardest_pos = torch.where(same, dist, torch.zeros_like(dist)).amax(dim=1)
    hardest_neg = torch.where(same, torch.full_like(dist, 4.0), dist).amin(dim=1)
    return torch.relu(hardest_pos - hardest_neg + margin).mean()


def identity_batches(data: IdentityCrops, identities_per_batch: int, crops_per_identity: int,
                     rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One epoch of crop index batches (each P x K long, the last possibly shorter).

    Every identity with >= 2 crops appears once per epoch, with K of its crops (drawn without
    replacement when it has K, else with). Worlds are taken in random order and all their
    identities go into the same batch.
    """
    order = np.argsort(data.identity, kind="stable")
    counts = np.bincount(data.identity, minlength=data.n_identities)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    usable = counts >= 2
    worlds = rng.permutation(np.unique(data.identity_world[usable]))
    # identities of the permuted worlds, world by world (stable sort on the world's position)
    position = np.full(len(data.worlds), -1)
    position[worlds] = np.arange(len(worlds))
    ids = np.flatnonzero(usable)
    ids = ids[np.argsort(position[data.identity_world[ids]], kind="stable")]
    k = crops_per_identity
    for lo in range(0, len(ids), identities_per_batch):
        chunk = ids[lo:lo + identities_per_batch]
        picks = [starts[i] + (rng.choice(counts[i], k, replace=counts[i] < k)) for i in chunk]
        yield order[np.concatenate(picks)]


@dataclass
class TrainResult:
    """history: one dict per epoch (train losses, validation metrics, seconds); best_epoch; state:
    the best epoch's model state dict; seconds: wall time of the whole training."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    state: dict | None = None
    seconds: float = 0.0


def embed_crops(model: ReidNet, crops: np.ndarray, log_aspect: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, h, w, 3) uint8 crops and (N,) log aspects -> (N, D) float32 unit embeddings (eval mode)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for lo in range(0, len(crops), batch):
            out.append(model(torch.from_numpy(to_network_input(crops[lo:lo + batch])),
                             torch.from_numpy(np.asarray(log_aspect[lo:lo + batch], np.float32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.dim), np.float32)


def train(model: ReidNet, data: IdentityCrops, val_probes: Probes, val_crops: np.ndarray, val_log_aspect: np.ndarray,
          config: TrainingConfig = TrainingConfig(), progress: Callable | None = None) -> TrainResult:
    """Train ``model`` in place on ``data``; early stopping on the rank-1 of ``val_crops`` (one crop
    per row of ``val_probes``, (P, h, w, 3) uint8, with their (P,) ``val_log_aspect``); the model ends
    with the best epoch's weights.

    progress: optional ``tqdm``-like callable wrapping the epoch range; it receives
    ``set_postfix`` calls with the latest figures when it has that method.

    Raises:
        ValueError: crops whose size is not the model's input size, or val_crops not one per probe row.
    """
    if data.crops.shape[1:3] != tuple(model.config.input_size):
        raise ValueError(f"train: crops are {data.crops.shape[1:3]} but the model takes {model.config.input_size}")
    if len(val_crops) != len(val_probes.world):
        raise ValueError(f"train: {len(val_crops)} validation crops for {len(val_probes.world)} probe rows")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    head = CosineClassifier(model.dim, data.n_identities, config.ce_scale, config.ce_margin)
    params = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(int((np.bincount(data.identity, minlength=data.n_identities) >= 2).sum())
                                / config.identities_per_batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, pct_start=0.1,
                                                   total_steps=config.max_epochs * steps_per_epoch)
    result, best, stale, start = TrainResult(), -1.0, 0, time.perf_counter()
    epochs = range(1, config.max_epochs + 1)
    bar = progress(epochs) if progress else epochs
    for epoch in bar:
        model.train()
        head.train()
        sums, n = np.zeros(2), 0
        for idx in identity_batches(data, config.identities_per_batch, config.crops_per_identity, rng):
            x = torch.from_numpy(to_network_input(data.crops[idx]))
            y = torch.from_numpy(data.identity[idx])
            e = model(x, torch.from_numpy(data.log_aspect[idx]))
            ce = head(e, y)
            tri = batch_hard_triplet(e, y, config.triplet_margin)
            loss = ce + config.triplet_weight * tri  # L = CE + lambda * triplet
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            sums += (float(ce.detach()), float(tri.detach()))
            n += 1
        val = retrieval_metrics(embed_crops(model, val_crops, val_log_aspect), val_probes)
        row = {"epoch": epoch, "train_ce": sums[0] / max(n, 1), "train_triplet": sums[1] / max(n, 1),
               "val_rank1": val["rank1"], "val_map": val["map"],
               "val_rank1_within_sequence": val["rank1_within_sequence"],
               "val_lookalike_to_original": val["lookalike_to_original"],
               "seconds": time.perf_counter() - start}
        result.history.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(ce=f"{row['train_ce']:.3f}", tri=f"{row['train_triplet']:.3f}",
                            rank1=f"{row['val_rank1']:.3f}", mAP=f"{row['val_map']:.3f}")
        if val["rank1"] > best + 1e-9:
            best, stale, result.best_epoch = val["rank1"], 0, epoch
            result.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if result.state is not None:
        model.load_state_dict(result.state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
