"""A small convolutional network that maps a detection crop to an L2-normalised appearance vector.

Input (N, 3, H, W) float32 BGR in [0, 1] (:func:`crops.crop_batch`) and each box's (N,) log aspect
ratio ``log(w / h)`` (:func:`crops.rect_log_aspect`: the resize to one size erases the shape of the
box); output (N, D) float32 with
unit rows, so the cosine distance ``1 - a . b`` of two detections is the association's appearance
cost. Sized for the detector node's budget (5-30 boxes per image at 30 Hz on two CPU cores):
a VGG-like stack of 3x3 convolutions whose first one already halves the resolution, about 0.2 M
parameters and ~5 M multiply-adds per 64x32 crop.

The pooled features of the last stage (average and max) are joined by the average of the first
stage's features and by the chromaticity ``c / (b + g + r)`` of the mean colour of the crop's central
half: the exact hue of an object (what tells a look-alike from its original, a few degrees apart)
within reach of the last layer, as shading (a scale of the colour) leaves the chromaticity alone.

Needs torch (import this module only where torch is installed).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

# Fixed input standardisation: x' = (x - 0.5) / 0.25 on BGR values in [0, 1].
_INPUT_MEAN = 0.5
_INPUT_STD = 0.25
# Gain on the centred chromaticity fed to the head: a hue step of a few degrees moves it by ~0.01,
# scaled to the order of the other pooled features.
_CHROMA_GAIN = 10.0


@dataclass(frozen=True)
class ReidNetConfig:
    """input_size: (H, W) of a crop in pixels; widths: channels of the stages (the first is the
    stem, each next stage halves the resolution); embedding_dim: D."""

    input_size: tuple[int, int] = (64, 32)
    widths: tuple[int, ...] = (16, 32, 64, 128)
    embedding_dim: int = 128

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or any(int(v) != v or v < 2 ** len(self.widths) for v in self.input_size):
            raise ValueError(f"ReidNetConfig: input_size must be two integers >= 2**len(widths) = "
                             f"{2 ** len(self.widths)}, got {self.input_size!r}")
        if len(self.widths) < 2 or any(int(w) != w or w < 1 for w in self.widths):
            raise ValueError(f"ReidNetConfig: widths must be >= 2 positive integers, got {self.widths!r}")
        if int(self.embedding_dim) != self.embedding_dim or self.embedding_dim < 2:
            raise ValueError(f"ReidNetConfig: embedding_dim must be an integer >= 2, got {self.embedding_dim!r}")

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> ReidNetConfig:
        """Inverse of :meth:`as_dict`; ValueError on unknown keys or bad values."""
        unknown = set(values) - {"input_size", "widths", "embedding_dim"}
        if unknown:
            raise ValueError(f"ReidNetConfig: unknown keys {sorted(unknown)}")
        return cls(input_size=tuple(int(v) for v in values["input_size"]),
                   widths=tuple(int(v) for v in values["widths"]), embedding_dim=int(values["embedding_dim"]))


def _conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU (the conv has no bias: the norm's shift is the bias)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class ReidNet(nn.Module):
    """Crop (N, 3, H, W) -> unit embedding (N, D); see the module docstring."""

    def __init__(self, config: ReidNetConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ReidNetConfig()
        w = self.config.widths
        self.stem = _conv(3, w[0], 2)
        stages = []
        for c_in, c_out in zip(w[:-1], w[1:]):
            stages += [_conv(c_in, c_in, 1), _conv(c_in, c_out, 2)]
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(2 * w[-1] + w[0] + 3 + 1, self.config.embedding_dim)

    @property
    def dim(self) -> int:
        return self.config.embedding_dim

    def features(self, x: torch.Tensor, log_aspect: torch.Tensor) -> torch.Tensor:
        """(N, D) embedding before normalisation; x (N, 3, H, W), log_aspect (N,)."""
        h, w = x.shape[2], x.shape[3]
        centre = x[:, :, h // 4:h - h // 4, w // 4:w - w // 4].mean(dim=(2, 3))
        chroma = centre / centre.sum(dim=1, keepdim=True).clamp(min=1e-3) - 1.0 / 3.0  # c / (b + g + r) - 1/3
        x = (x - _INPUT_MEAN) / _INPUT_STD  # x' = (x - mu) / sigma
        stem = self.stem(x)
        deep = self.stages(stem)
        pooled = torch.cat([deep.mean(dim=(2, 3)), deep.amax(dim=(2, 3)), stem.mean(dim=(2, 3)),
                            _CHROMA_GAIN * chroma, log_aspect.reshape(-1, 1).to(x.dtype)], dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor, log_aspect: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 BGR in [0, 1] and (N,) log(w / h) of the boxes -> (N, D) with unit
        rows: e = f / |f|."""
        return nn.functional.normalize(self.features(x, log_aspect), dim=1, eps=1e-12)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fuse_for_inference(model: ReidNet) -> ReidNet:
    """Fold every batch norm into its convolution (eval mode), in place; returns the model.

    W' = W * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps): the same outputs
    (to float rounding) with one op fewer per layer, which matters for small batches on a CPU.
    """
    model.eval()
    for block in [model.stem, *model.stages]:
        conv, norm = block[0], block[1]
        block[0] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, norm)
        block[1] = nn.Identity()
    return model


def save_checkpoint(path: str | Path, model: ReidNet, meta: dict | None = None) -> None:
    """Write ``{config, state_dict, meta}`` (tensors and plain types only: loadable with
    ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"config": model.config.as_dict(), "state_dict": state, "meta": dict(meta or {})}, path)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[ReidNet, dict]:
    """The model (eval mode, not fused) and the meta dict of a :func:`save_checkpoint` file.

    Raises:
        FileNotFoundError: the file does not exist (the message says how to make it).
        ValueError: the file is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"re-ID weights {str(path)!r} not found; train them with "
            "`python -m object_permanence.tools.train_reid` (writes models/reid/reid_net.pt)")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
        model = ReidNet(ReidNetConfig.from_dict(blob["config"]))
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{str(path)!r} is not a re-ID checkpoint written by train_reid: {exc}") from exc
    return model.eval(), dict(blob.get("meta", {}))
