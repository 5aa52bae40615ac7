"""The persistence transformer: a small causal transformer encoder over a track's per-frame
history rows, with causal attention pooling, so a score exists at every frame of a track's life and
the pooling weights say which frames mattered.

Input (B, T, F) rows (:data:`history.FEATURES`), oldest first, left-aligned: the valid frames of
sequence b are ``0 .. lengths[b] - 1``, the rest is padding. Output per frame t the logit of
"real persistent object" given frames 0..t only (causal self-attention, causal pooling), and the
pooling weights ``A[b, t, s]`` (s <= t, summing to 1 over the valid s).

Needs torch (import this module only where torch is installed).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """n_features: F; d_model: width; n_heads, n_layers, d_ff: encoder shape; max_len: longest
    history (positional embeddings); dropout: training-time dropout; running_mean: also feed each
    frame the causal running mean of the standardised rows up to it (the track's summary so far);
    running_max: also feed their causal running maximum (the strongest evidence so far)."""

    n_features: int
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 64
    max_len: int = 32
    dropout: float = 0.1
    running_mean: bool = False
    running_max: bool = False

    def __post_init__(self) -> None:
        for name in ("n_features", "d_model", "n_heads", "n_layers", "d_ff", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"TransformerConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"TransformerConfig: d_model ({self.d_model}) must be divisible by n_heads "
                             f"({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig: dropout must be in [0, 1), got {self.dropout}")

    def as_dict(self) -> dict:
        return asdict(self)


class PersistenceTransformer(nn.Module):
    """Causal transformer encoder + causal attention pooling + a per-frame logit head.

    The input rows are standardised with the training set's per-feature ``mean`` / ``std`` (buffers,
    shipped with the weights).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.register_buffer("mean", torch.zeros(config.n_features))
        self.register_buffer("std", torch.ones(config.n_features))
        self.embed = nn.Linear(config.n_features * (1 + int(config.running_mean) + int(config.running_max)), d)
        self.position = nn.Embedding(config.max_len, d)
        layer = nn.TransformerEncoderLayer(d, config.n_heads, config.d_ff, config.dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.pool_score = nn.Linear(d, 1)
        self.head = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-feature standardisation (F,), std floored at 1e-3."""
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.clamp(torch.as_tensor(std, dtype=torch.float32), min=1e-3))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor,
                last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, F) rows; lengths: (B,) valid frames (>= 1). Returns logits (B, T) and pooling
        weights (B, T, T) (row t: weights over frames s <= t; padded rows and columns are 0).
        ``last_only``: only each sequence's newest valid frame, logits (B, 1) and weights (B, 1, T)
        (what inference needs; the pooling and the head then run on one row per track)."""
        b, t, _ = x.shape
        if t > self.config.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len {self.config.max_len}")
        steps = torch.arange(t, device=x.device)
        valid = steps[None, :] < lengths[:, None]                                   # (B, T)
        xn = (x - self.mean) / self.std                                              # standardised rows
        parts = [xn]
        if self.config.running_mean:
            count = (steps + 1).to(xn.dtype)[None, :, None]
            parts.append(torch.cumsum(xn, dim=1) / count)                          # mean_t = sum_{s<=t} x_s / (t+1)
        if self.config.running_max:
            parts.append(torch.cummax(xn, dim=1).values)                            # max_t = max_{s<=t} x_s
        z = self.embed(torch.cat(parts, dim=-1)) + self.position(steps)[None]       # (B, T, d)
        # Padding sits after the valid frames and attention is causal, so no valid frame ever attends
        # to padding: the causal mask alone is the padding mask too (padded outputs are never used),
        # which keeps the fused attention kernel (a separate key-padding mask makes it ~2x slower).
        h = self.encoder(z, mask=nn.Transformer.generate_square_subsequent_mask(t, device=x.device), is_causal=True)
        a = self.pool_score(h).squeeze(-1)                                          # (B, T) pooling scores
        query = (lengths - 1)[:, None] if last_only else steps[None, :].expand(b, t)  # (B, Q) frames scored
        allowed = (steps[None, None, :] <= query[:, :, None]) & valid[:, None, :]   # (B, Q, T): s <= t, s valid
        w = torch.softmax(a[:, None, :].masked_fill(~allowed, float("-inf")), dim=-1)  # A[b,t,s] = softmax_s<=t(a_s)
        if not last_only:
            w = w * valid[:, :, None]                                               # rows of padding frames: 0
        pooled = torch.bmm(w, h)                                                    # p_t = sum_s A[t,s] h_s
        h_q = torch.gather(h, 1, query[:, :, None].expand(-1, -1, h.shape[2]))      # (B, Q, d) h_t
        logits = self.head(torch.cat([pooled, h_q], dim=-1)).squeeze(-1)            # (B, Q)
        return logits, w


class _LastFrame(nn.Module):
    """``model(x, lengths, last_only=True)`` as a two-argument module (what tracing needs)."""

    def __init__(self, model: PersistenceTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x, lengths, last_only=True)


def inference_module(model: PersistenceTransformer) -> torch.jit.ScriptModule:
    """The model's ``last_only`` forward traced, frozen and optimised for inference on the device
    its parameters are on: the same numbers as the eager module (batch size and sequence length
    stay dynamic; tests check both) at about half the per-call cost on a CPU, where this small
    model is bound by per-operator dispatch, not arithmetic. Inputs longer than ``max_len`` must
    be cut by the caller (the traced module no longer checks). The device is part of the trace:
    move the model first, then trace it (moving it afterwards breaks the traced module)."""
    model = model.eval()
    device = next(model.parameters()).device
    t = model.config.max_len
    example = (torch.zeros(2, t, model.config.n_features, device=device),
               torch.tensor([t, 1], dtype=torch.int64, device=device))
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the max_len check is a Python branch
        # torch marks TorchScript deprecated in favour of torch.compile, which needs a C++ toolchain
        # and a long first call at run time on the robot; TorchScript still runs and is tested here.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(_LastFrame(model), example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


def export_onnx(model: PersistenceTransformer, path, keep_threshold: float, release_threshold: float,
                features: tuple[str, ...]):
    """Write the model's ``last_only`` forward to ``path`` as ONNX for
    :class:`onnx_scorer.OnnxTransformerScorer`: inputs ``rows`` (B, max_len, F) float32 and
    ``lengths`` (B,) int64, outputs ``logits`` (B, 1) and ``weights`` (B, 1, max_len); the batch is
    dynamic, the sequence length fixed (the exporter bakes the attention's reshapes for the traced
    length); the thresholds, feature columns and length in the metadata. The model must be on the
    CPU. Returns ``path``."""
    import json

    import onnx

    from object_permanence.core.persistence.onnx_scorer import METADATA_KEYS

    model = model.eval()
    t = model.config.max_len
    example = (torch.zeros(2, t, model.config.n_features), torch.tensor([t, 1], dtype=torch.int64))
    # Grad enabled on purpose: under no_grad the encoder takes torch's fused fast path, an operator
    # ONNX has no export for; with grad it runs the plain operators (the same numbers).
    with torch.inference_mode(False), torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings (the max_len check) and the exporter's deprecation
        torch.onnx.export(_LastFrame(model), example, str(path), input_names=["rows", "lengths"],
                          output_names=["logits", "weights"], opset_version=17, dynamo=False,
                          dynamic_axes={name: {0: "tracks"} for name in ("rows", "lengths", "logits", "weights")})
    exported = onnx.load(str(path))
    values = (json.dumps(list(features)), repr(float(keep_threshold)), repr(float(release_threshold)), str(t))
    for key, value in zip(METADATA_KEYS, values):
        exported.metadata_props.add(key=key, value=value)
    onnx.save(exported, str(path))
    return path


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_checkpoint(path, model: PersistenceTransformer, extra: dict) -> None:
    """Weights, config, normalisation and ``extra`` (thresholds, feature names, metrics) in one file."""
    torch.save({"config": model.config.as_dict(), "state_dict": model.state_dict(), **extra}, path)


def load_checkpoint(path, map_location: str | torch.device = "cpu") -> tuple[PersistenceTransformer, dict]:
    """The model (eval mode) and the checkpoint's other entries.

    Raises:
        FileNotFoundError: no file at ``path``; ValueError: not a persistence checkpoint.
    """
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a persistence transformer checkpoint")
    model = PersistenceTransformer(TransformerConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, {k: v for k, v in ckpt.items() if k not in ("config", "state_dict")}
