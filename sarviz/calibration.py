"""One calibration from dB to model/display units and back — the single source of truth.

A SAR diffusion model never sees decibels: its training target is σ⁰ (dB) clipped to a fixed
range and scaled to [−1, 1]; its decoded output is mapped back through the same range. The
display stretch and the [0, 1] mapping the metrics use (SSIM, FSIM, Mean/Std similarity,
GLCM) must be that same range, or "the same grey = the same backscatter" stops holding and
a generator is scored on values it cannot produce.

So every range lives here and nowhere else:

* :data:`DEFAULT_CALIBRATION` — what a model card without its own ``calibration`` uses, what
  the display and the metrics use by default, what trainers write into checkpoints unless
  told otherwise.
* A model card (or a checkpoint sarviz trained) may carry its own ``calibration`` section
  (:meth:`Calibration.to_dict` layout); :func:`calibration_from_card` reads it, falling back
  to the legacy ``output.db_range`` field.

**The reference's ambiguity.** HuiYanEarth-SAR's ``train_sar_regray.py`` clips the stacked
VV/VH array to one range (``sar_min``/``sar_max``) that the script never defines; the paper
gives no range either. We cannot know the published weights' range. Our default is
per-polarisation (VV −25…0 dB, VH −32…−5 dB: Sentinel-1 IW land/water backscatter), and a
card can declare ``"shared": true`` with one range for both, as the reference code does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from sarviz.errors import CalibrationError

POLARISATIONS: tuple[str, ...] = ("VV", "VH")

#: The display-only range of the VV − VH ratio channel of the false-colour composite (dB).
#: It is not a calibration of any model (no model outputs a ratio); it lives here so that
#: every dB range of the code base is in one file.
RATIO_DISPLAY_RANGE_DB: tuple[float, float] = (0.0, 15.0)


@dataclass(frozen=True)
class Calibration:
    """σ⁰ dB ↔ model/display units for each polarisation.

    ``ranges[pol] = (lo, hi)`` in dB; values are clipped to it. ``shared`` records that one
    range was applied to the stacked VV/VH array (then both entries are equal).
    """

    ranges: Mapping[str, tuple[float, float]]
    shared: bool = False
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean = {}
        for pol, pair in self.ranges.items():
            lo, hi = (float(pair[0]), float(pair[1]))
            if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
                raise CalibrationError(
                    f"calibration range for {pol} must be [lo, hi] dB with lo < hi, got {list(pair)}"
                )
            clean[str(pol).upper()] = (lo, hi)
        if self.shared and len(set(clean.values())) > 1:
            raise CalibrationError("a shared calibration needs the same range for every polarisation")
        object.__setattr__(self, "ranges", clean)

    # -- lookup ------------------------------------------------------------------------------
    @property
    def polarisations(self) -> tuple[str, ...]:
        return tuple(self.ranges)

    def range(self, pol: str) -> tuple[float, float]:
        try:
            return self.ranges[pol.upper()]
        except KeyError:
            raise CalibrationError(f"no calibration for polarisation {pol!r} (have {', '.join(self.ranges)})") from None

    # -- mappings (NaN stays NaN) --------------------------------------------------------------
    def to_unit(self, db: np.ndarray, pol: str) -> np.ndarray:
        """dB → [0, 1]: (dB − lo) / (hi − lo), clipped. float32."""
        lo, hi = self.range(pol)
        return np.clip((np.asarray(db, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)

    def from_unit(self, unit: np.ndarray, pol: str) -> np.ndarray:
        """[0, 1] → dB (inputs outside [0, 1] are clipped first). float32."""
        lo, hi = self.range(pol)
        return (lo + np.clip(np.asarray(unit, dtype=np.float32), 0.0, 1.0) * (hi - lo)).astype(np.float32)

    def to_signed(self, db: np.ndarray, pol: str) -> np.ndarray:
        """dB → [−1, 1]: the diffusion training target (and the VAE's input range)."""
        return self.to_unit(db, pol) * 2.0 - 1.0

    def from_signed(self, x: np.ndarray, pol: str) -> np.ndarray:
        """[−1, 1] (decoded image channel) → dB."""
        return self.from_unit((np.asarray(x, dtype=np.float32) + 1.0) / 2.0, pol)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"db_range": {p: list(r) for p, r in self.ranges.items()}, "shared": self.shared}
        if self.note:
            out["note"] = self.note
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        try:
            ranges = data["db_range"]
            if not isinstance(ranges, Mapping):
                raise CalibrationError("db_range must map polarisation to [lo, hi]")
            extra = {k: v for k, v in data.items() if k not in ("db_range", "shared", "note")}
            return cls(
                ranges={p: tuple(v) for p, v in ranges.items()},
                shared=bool(data.get("shared", False)),
                note=str(data.get("note", "")),
                extra=extra,
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise CalibrationError(
                f"not a calibration ({exc}): expected {{'db_range': {{'VV': [lo, hi], ...}}}}"
            ) from None


#: The default calibration (see the module docstring for why these numbers).
DEFAULT_CALIBRATION = Calibration(
    ranges={"VV": (-25.0, 0.0), "VH": (-32.0, -5.0)},
    shared=False,
    note="sarviz default: per-polarisation Sentinel-1 IW land/water range; the HuiYanEarth-SAR "
    "reference clips stacked VV/VH to one undefined range (sar_min/sar_max), so a published "
    "checkpoint's true range is unknown",
)


def calibration_from_card(data: Mapping[str, Any] | None) -> Calibration:
    """The calibration a model card (or a trained checkpoint's metadata) declares.

    Looks for ``calibration`` (the :meth:`Calibration.to_dict` layout), then the legacy
    ``output.db_range``; else :data:`DEFAULT_CALIBRATION`.
    """
    data = data or {}
    if data.get("calibration"):
        return Calibration.from_dict(data["calibration"])
    legacy = (data.get("output") or {}).get("db_range")
    if legacy:
        return Calibration.from_dict({"db_range": legacy, "note": "from the card's output.db_range"})
    return DEFAULT_CALIBRATION


def calibration_from_provenance(provenance: Mapping[str, Any] | None) -> tuple[Calibration, str]:
    """(calibration, where it came from) for a generated result's provenance.

    ``where`` is ``"model"`` (the provenance carries the model's ``calibration``),
    ``"model (legacy db_range)"`` (only the older ``db_range`` field), or ``"default"``.
    A malformed calibration raises ValueError: a result must not be scored or shown on a guess.
    """
    prov = provenance or {}
    if isinstance(prov.get("calibration"), Calibration):
        return prov["calibration"], "model"
    if prov.get("calibration"):
        return calibration_from_card({"calibration": prov["calibration"]}), "model"
    if isinstance(prov.get("db_range"), Mapping) and prov["db_range"]:
        return calibration_from_card({"output": {"db_range": prov["db_range"]}}), "model (legacy db_range)"
    return DEFAULT_CALIBRATION, "default"
