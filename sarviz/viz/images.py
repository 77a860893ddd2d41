"""Display images for the panels: fixed, labelled stretches (never per-image auto-contrast).

A fixed dB stretch is what lets a researcher compare a real and a synthetic image by eye:
the same grey means the same backscatter in every panel.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from sarviz.calibration import DEFAULT_CALIBRATION, RATIO_DISPLAY_RANGE_DB, Calibration

#: Display ranges in dB under the default calibration (read-only view for older callers):
#: the SAR stretch *is* the model calibration (sarviz.calibration), never a second copy.
DB_RANGES: dict[str, tuple[float, float]] = {**DEFAULT_CALIBRATION.ranges, "VV-VH": RATIO_DISPLAY_RANGE_DB}
# Reflectance range for the true-colour S2 display (factor, not DN).
OPTICAL_RANGE: tuple[float, float] = (0.0, 0.3)
NAN_RGB = (255, 0, 255)  # missing pixels shown in magenta, so they are never mistaken for dark


@dataclass(frozen=True)
class Stretch:
    lo: float
    hi: float
    label: str
    cmap: str = "gray"


def display_range(pol: str, calibration: Calibration | None = None) -> tuple[float, float]:
    """The fixed dB range shown for ``pol`` ("VV", "VH" or "VV-VH") under ``calibration``.

    VV and VH: the calibration's range (the model's own when the result declares one), so
    the picture shows exactly the values the model can produce; "VV-VH": the ratio range
    of the false-colour composite (:data:`sarviz.calibration.RATIO_DISPLAY_RANGE_DB`).
    """
    if pol == "VV-VH":
        return RATIO_DISPLAY_RANGE_DB
    return (calibration or DEFAULT_CALIBRATION).range(pol)


def sar_stretch(pol: str, calibration: Calibration | None = None) -> Stretch:
    lo, hi = display_range(pol, calibration)
    return Stretch(lo, hi, f"{pol} backscatter σ⁰ (dB)" if pol != "VV-VH" else "VV − VH (dB)")


def _unit(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0)


def render_gray(arr: np.ndarray, stretch: Stretch) -> np.ndarray:
    """(H, W) values → (H, W, 3) uint8 through a fixed stretch and a matplotlib colour map."""
    import matplotlib

    nan = ~np.isfinite(arr)
    rgba = matplotlib.colormaps[stretch.cmap](_unit(np.nan_to_num(arr, nan=stretch.lo), stretch.lo, stretch.hi))
    rgb = (rgba[..., :3] * 255).round().astype(np.uint8)
    rgb[nan] = NAN_RGB
    return rgb


def render_sar(
    vv_db: np.ndarray | None, vh_db: np.ndarray | None, mode: str = "VV", calibration: Calibration | None = None
) -> np.ndarray:
    """A SAR display image: ``"VV"``, ``"VH"`` (grey, fixed dB stretch) or ``"false-colour"``.

    False colour: R = VV, G = VH, B = VV − VH, each on its fixed range (the usual Sentinel-1
    dual-pol composite: vegetation green, bare soil/urban magenta-white, water dark).
    """
    if mode == "VV":
        if vv_db is None:
            raise ValueError("no VV layer")
        return render_gray(vv_db, sar_stretch("VV", calibration))
    if mode == "VH":
        if vh_db is None:
            raise ValueError("no VH layer")
        return render_gray(vh_db, sar_stretch("VH", calibration))
    if mode == "false-colour":
        if vv_db is None or vh_db is None:
            raise ValueError("false colour needs both VV and VH")
        chans = [
            _unit(vv_db, *display_range("VV", calibration)),
            _unit(vh_db, *display_range("VH", calibration)),
            _unit(vv_db - vh_db, *display_range("VV-VH")),
        ]
        rgb = (np.dstack([np.nan_to_num(c, nan=0.0) for c in chans]) * 255).round().astype(np.uint8)
        rgb[~(np.isfinite(vv_db) & np.isfinite(vh_db))] = NAN_RGB
        return rgb
    raise ValueError(f"unknown display mode {mode!r}; use VV, VH or false-colour")


def render_true_colour(optical: np.ndarray, gamma: float = 1.0 / 1.6) -> np.ndarray:
    """Sentinel-2 B4, B3, B2 (optical[2], optical[1], optical[0]) reflectance → RGB uint8.

    Fixed reflectance range with a mild gamma, so that scenes are comparable.
    """
    rgb = np.dstack([optical[2], optical[1], optical[0]])
    nan = ~np.isfinite(rgb).all(axis=2)
    unit = _unit(np.nan_to_num(rgb, nan=0.0), *OPTICAL_RANGE) ** gamma
    out = (unit * 255).round().astype(np.uint8)
    out[nan] = NAN_RGB
    return out


def colourbar_png(stretch: Stretch, width_px: int = 360, height_px: int = 70) -> bytes:
    """A horizontal, labelled colour bar for a stretch, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    fig = plt.figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    ax = fig.add_axes([0.05, 0.55, 0.9, 0.3])
    fig.colorbar(
        matplotlib.cm.ScalarMappable(Normalize(stretch.lo, stretch.hi), stretch.cmap),
        cax=ax,
        orientation="horizontal",
        label=stretch.label,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.04)  # keep the axis label inside
    plt.close(fig)
    return buf.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def true_aspect(rgb: np.ndarray, pixel_xy_m: tuple[float, float], tolerance: float = 0.02) -> np.ndarray:
    """The display image resampled (nearest neighbour: speckle stays sharp) so that it has the
    ground's aspect: rows stretched by north–south / east–west pixel size. A 512 × 512 chip of
    7.9 × 10 m pixels becomes 512 wide × 648 tall, as its footprint on the map."""
    px, py = (float(v) for v in pixel_xy_m)
    if not (px > 0 and py > 0) or abs(py / px - 1.0) <= tolerance:
        return rgb
    h, w = rgb.shape[:2]
    if py > px:
        new_h, new_w = max(1, round(h * py / px)), w
    else:
        new_h, new_w = h, max(1, round(w * px / py))
    rows = np.minimum((np.arange(new_h) * h / new_h).astype(int), h - 1)
    cols = np.minimum((np.arange(new_w) * w / new_w).astype(int), w - 1)
    return rgb[rows][:, cols]
