"""The ControlNet condition: a scene's incidence angle + AlphaEarth embedding as a tensor.

The preprocessing is *data* (:class:`ConditionSpec`), stored in the model card, because a
model only works with the preprocessing it was trained with. The default spec is the
HuiYanEarth-SAR reference (``../shared/README.md``):

* band order ``[angle, A00 … A63]`` (65 channels);
* angle → (θ − 35) / 15, clipped to ±1;
* embedding → one z-score over the whole 64 × H × W block, clipped to ±3;
* the stack is downsampled ×0.5 (bilinear, ``F.interpolate(scale_factor=0.5)`` as the
  reference does — its sampling grid on odd sizes too), then resized to 512 × 512 (bicubic).

Missing values differ from the reference on purpose: it sets NaN to 0 before normalising
(a missing angle becomes 20°, missing embedding values bias the block mean/std); here the
z-score is over valid values, the gaps are filled afterwards (block mean, angle mean) and
the generators set those output pixels missing.

A scene without an angle layer gets a user-set angle (default 37.5°, mid-swath) broadcast
over the patch, and the condition records that it did. A scene without an embedding is
refused: the paper shows the model produces noise without it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from sarviz.generators.base import DEFAULT_ANGLE_DEG, GenerationError
from sarviz.scene import EMBEDDING_BANDS, Scene

ANGLE = "angle"
EMBEDDING = "embedding"  # shorthand for the 64 bands A00..A63 in a spec's band list
_RESIZE_MODES = ("nearest", "bilinear", "bicubic", "area")
# Sentinel-1 IW spans about 29°–46°; anything outside a wide physical range is a typo.
ANGLE_LIMITS_DEG = (10.0, 70.0)


class ConditionError(GenerationError):
    """The scene or the model card's preprocessing cannot make a condition."""


@dataclass(frozen=True)
class ConditionSpec:
    """How a model turns scene layers into its condition tensor (part of the model card)."""

    #: channel order; each entry is "angle", "embedding" (A00..A63) or one band "A07"
    bands: tuple[str, ...] = (ANGLE, EMBEDDING)
    angle_center_deg: float = 35.0
    angle_scale_deg: float = 15.0
    angle_clip: float = 1.0
    #: "zscore_block" (one mean/std over all embedding values), "zscore_band" or "none"
    embedding_norm: str = "zscore_block"
    embedding_clip: float | None = 3.0
    #: scale factor of the first resize (None = skip), and its mode
    pre_scale: float | None = 0.5
    pre_scale_mode: str = "bilinear"
    #: final square size in pixels (the model's image size) and the resize mode
    size: int = 512
    resize_mode: str = "bicubic"

    def __post_init__(self) -> None:
        if isinstance(self.bands, list):
            object.__setattr__(self, "bands", tuple(self.bands))
        for b in self.bands:
            if b not in (ANGLE, EMBEDDING) and b not in EMBEDDING_BANDS:
                raise ConditionError(f"condition band {b!r} is unknown; use 'angle', 'embedding' or A00..A63")
        if self.embedding_norm not in ("zscore_block", "zscore_band", "none"):
            raise ConditionError(f"embedding_norm {self.embedding_norm!r} must be zscore_block, zscore_band or none")
        for mode in (self.pre_scale_mode, self.resize_mode):
            if mode not in _RESIZE_MODES:
                raise ConditionError(f"resize mode {mode!r} must be one of {', '.join(_RESIZE_MODES)}")
        if not isinstance(self.size, int) or not 8 <= self.size <= 4096 or self.size % 8:
            raise ConditionError(f"condition size must be a multiple of 8 in [8, 4096], got {self.size!r}")
        if self.pre_scale is not None and not 0.0 < float(self.pre_scale) <= 4.0:
            raise ConditionError(f"pre_scale must be in (0, 4] or null, got {self.pre_scale!r}")
        if self.angle_scale_deg == 0:
            raise ConditionError("angle_scale_deg must not be 0")

    @property
    def channels(self) -> int:
        return sum(len(EMBEDDING_BANDS) if b == EMBEDDING else 1 for b in self.bands)

    @property
    def needs_angle(self) -> bool:
        return ANGLE in self.bands

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, **overrides: Any) -> "ConditionSpec":
        """A spec from a model card's ``preprocessing`` object (unknown keys are an error)."""
        data = dict(data or {})
        data.update(overrides)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConditionError(f"unknown preprocessing keys {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConditionError(f"invalid preprocessing: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = list(self.bands)
        return d


@dataclass
class Condition:
    """A condition tensor (C, size, size) float32 and where its inputs came from."""

    array: np.ndarray
    angle_source: str  # "scene", "user" or "unused"
    angle_deg: float | None  # mean angle (scene) or the user's angle
    embedding_nan_fraction: float
    spec: ConditionSpec
    notes: list[str] = field(default_factory=list)

    def provenance(self) -> dict[str, Any]:
        return {
            "condition_source": "scene embedding + "
            + {"scene": "scene angle layer", "user": "user-set angle", "unused": "no angle"}[self.angle_source],
            "angle_source": self.angle_source,
            "angle_deg": None if self.angle_deg is None else round(float(self.angle_deg), 4),
            "embedding_nan_fraction": round(self.embedding_nan_fraction, 6),
            "preprocessing": self.spec.to_dict(),
        }


def check_angle(angle_deg: Any) -> float:
    """A user-set incidence angle, checked."""
    try:
        value = float(angle_deg)
    except (TypeError, ValueError):
        raise ConditionError(f"the incidence angle must be a number of degrees, got {angle_deg!r}") from None
    lo, hi = ANGLE_LIMITS_DEG
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConditionError(
            f"incidence angle {angle_deg!r}° is outside [{lo:g}, {hi:g}]°; Sentinel-1 IW spans about 29°–46°"
        )
    return value


def _resize(
    stack: np.ndarray, size: tuple[int, int] | None, mode: str, scale_factor: float | None = None
) -> np.ndarray:
    # torch's interpolate is the resize the reference code uses; align_corners=False is its
    # default for bilinear/bicubic. With ``scale_factor`` (and no recompute) torch samples at
    # x_src = (x + 0.5) / scale − 0.5 and sizes the output floor(h·scale) — the reference's
    # grid; ``size=floor(h·scale)`` would rescale by h/floor(h·scale) instead, a different
    # grid on odd sizes.
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None]
    kwargs = {} if mode in ("nearest", "area") else {"align_corners": False}
    if scale_factor is not None:
        return F.interpolate(t, scale_factor=float(scale_factor), mode=mode, **kwargs)[0].numpy()
    return F.interpolate(t, size=size, mode=mode, **kwargs)[0].numpy()


def build_condition(
    scene: Scene, spec: ConditionSpec | None = None, angle_deg: float | None = None, size: int | None = None
) -> Condition:
    """The model's condition for ``scene``: (spec.channels, size, size) float32.

    ``angle_deg`` is used only when the scene has no angle layer (default 37.5°).
    """
    spec = spec or ConditionSpec()
    if size is not None and size != spec.size:
        spec = ConditionSpec.from_dict(spec.to_dict(), size=size)
    if scene.embedding is None:
        raise ConditionError(
            f"scene {scene.scene_id or '(unnamed)'} has no AlphaEarth embedding layer; the diffusion model "
            "generates noise without it (HuiYanEarth-SAR ablation). Fetch the embedding for this place "
            "(Earth Engine source) or use the emulator model."
        )
    notes: list[str] = []
    emb = scene.embedding.astype(np.float32, copy=True)
    nan = ~np.isfinite(emb)
    nan_fraction = float(nan.mean())
    if nan_fraction > 0.5:
        raise ConditionError(
            f"scene {scene.scene_id}: {nan_fraction:.0%} of the embedding is missing (NaN); at most half may be missing"
        )
    if spec.embedding_norm == "zscore_block":
        mean, std = float(np.nanmean(emb)), float(np.nanstd(emb))
        emb = (emb - mean) / (std if std > 0 else 1.0)
    elif spec.embedding_norm == "zscore_band":
        mean = np.nanmean(emb, axis=(1, 2), keepdims=True)
        std = np.nanstd(emb, axis=(1, 2), keepdims=True)
        emb = (emb - mean) / np.where(std > 0, std, 1.0)
    if spec.embedding_clip is not None:
        emb = np.clip(emb, -spec.embedding_clip, spec.embedding_clip)
    if nan_fraction:
        # after the z-score, 0 is the block mean: the least informative fill value
        emb[nan] = 0.0
        notes.append(
            f"{nan_fraction:.2%} of the embedding was missing: filled with the block mean for the "
            "condition; those output pixels are set missing (NaN)"
        )

    angle_source, angle_mean = "unused", None
    angle_map: np.ndarray | None = None
    if spec.needs_angle:
        if scene.angle_deg is not None:
            angle = scene.angle_deg.astype(np.float32, copy=True)
            finite = np.isfinite(angle)
            angle_mean = float(np.nanmean(angle))
            if not finite.all():
                angle[~finite] = angle_mean
                notes.append(f"{1 - finite.mean():.2%} of the angle layer was missing and filled with its mean")
            angle_source = "scene"
        else:
            angle_mean = check_angle(DEFAULT_ANGLE_DEG if angle_deg is None else angle_deg)
            angle = np.full(scene.shape, angle_mean, dtype=np.float32)
            angle_source = "user"
        angle_map = np.clip((angle - spec.angle_center_deg) / spec.angle_scale_deg, -spec.angle_clip, spec.angle_clip)

    channels = []
    for band in spec.bands:
        if band == ANGLE:
            assert angle_map is not None  # needs_angle is "ANGLE in bands": computed above
            channels.append(angle_map[None])
        elif band == EMBEDDING:
            channels.append(emb)
        else:
            channels.append(emb[EMBEDDING_BANDS.index(band)][None])
    stack = np.concatenate(channels).astype(np.float32)
    if spec.pre_scale is not None and spec.pre_scale != 1.0:
        if min(stack.shape[1:]) * spec.pre_scale < 1:
            raise ConditionError(
                f"the scene ({stack.shape[2]}×{stack.shape[1]} px) is too small for the "
                f"×{spec.pre_scale:g} pre-scale of the model's preprocessing"
            )
        # F.interpolate(scale_factor=…) exactly as the reference (inference_sar_gray.py) does
        stack = _resize(stack, None, spec.pre_scale_mode, scale_factor=spec.pre_scale)
    stack = _resize(stack, (spec.size, spec.size), spec.resize_mode)
    return Condition(
        array=np.ascontiguousarray(stack, dtype=np.float32),
        angle_source=angle_source,
        angle_deg=angle_mean,
        embedding_nan_fraction=nan_fraction,
        spec=spec,
        notes=notes,
    )
