"""What the metrics need to know from provenance: the model's calibration and how the real S1 was made.

* :func:`calibration_of` — the calibration a generated result was produced with (its
  provenance ``calibration`` dict, as a model card declares it; the legacy ``db_range``
  field; else :data:`~sarviz.calibration.DEFAULT_CALIBRATION`), and where it came from.
* :func:`real_s1_acquisition` — whether the real Sentinel-1 image is a single acquisition
  or a temporal composite. A median of N acquisitions has about N× the looks of one image
  and a slightly lower mean (≈ −0.2 dB for N = 6): every speckle-sensitive metric
  (:data:`SPECKLE_SENSITIVE`) then measures the compositing, not the generator
  (benchmarks/RESULTS_metrics.md, "composite vs single").

Provenance is read defensively: sources write it in several generations of layout, and
an absent field means *unknown*, never "single".
"""

from __future__ import annotations

from typing import Any, Mapping

from sarviz.calibration import Calibration, calibration_from_provenance

#: metrics whose value depends on the speckle of the real image (composites change them)
SPECKLE_SENSITIVE: tuple[str, ...] = ("kl", "enl", "glcm", "ssim")

SINGLE, COMPOSITE, UNKNOWN = "single", "composite", "unknown"


def calibration_of(provenance: Mapping[str, Any] | None) -> tuple[Calibration, str]:
    """(calibration, where it came from): :func:`sarviz.calibration.calibration_from_provenance`."""
    return calibration_from_provenance(provenance)


def _composite_n(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def real_s1_acquisition(provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """How the real S1 image of a scene was made: ``{"mode", "kind", "n", "read_from"}``.

    ``mode`` is ``"single"``, ``"composite"`` or ``"unknown"``. Read, in order:

    1. ``s1_mode`` (``"single"`` / ``"composite"``) and ``s1_composite`` — a dict
       ``{"kind": "median", "n": 6}`` or a string (``"median"``, ``"nearest"``) — at the top
       level of the provenance (the layered scene layout);
    2. the ``vv_db`` layer report (``layers.vv_db.detail.composite``, and the number of
       ``items`` it lists), as the sources wrote it before;
    3. else unknown (e.g. a GeoTIFF uploaded without provenance).

    A composite of one acquisition (``n == 1``) or ``"nearest"`` is a single acquisition.
    """
    prov = provenance or {}
    mode = str(prov.get("s1_mode") or "").lower()
    comp = prov.get("s1_composite")
    kind, n, read_from = None, None, None
    if isinstance(comp, Mapping):
        kind, n, read_from = comp.get("kind"), _composite_n(comp.get("n")), "s1_composite"
    elif isinstance(comp, str) and comp:
        kind, read_from = comp, "s1_composite"
    if kind is None and not mode:
        detail = ((prov.get("layers") or {}).get("vv_db") or {}).get("detail") or {}
        if isinstance(detail, Mapping) and detail.get("composite"):
            kind, read_from = detail.get("composite"), "layers.vv_db.detail"
            items = detail.get("items")
            n = len(items) if isinstance(items, (list, tuple)) and items else None
    if mode in (SINGLE, COMPOSITE):
        read_from = read_from or "s1_mode"
    kind = str(kind).lower() if kind else None
    if mode not in (SINGLE, COMPOSITE):
        if kind == "nearest" or (kind and n == 1):
            mode = SINGLE
        elif kind:
            mode = COMPOSITE
        else:
            mode = UNKNOWN
    if mode == COMPOSITE and n == 1:
        mode = SINGLE
    return {"mode": mode, "kind": kind, "n": n, "read_from": read_from}


def composite_note(acquisition: Mapping[str, Any] | None) -> str | None:
    """One line for the UI and the JSON when the real S1 is a composite (else None)."""
    if not acquisition or acquisition.get("mode") != COMPOSITE:
        return None
    kind = acquisition.get("kind") or "composite"
    n = acquisition.get("n")
    what = f"a {kind} of {n} acquisitions" if n else f"a temporal {kind}"
    return (
        f"The real Sentinel-1 is {what}, not a single acquisition: its speckle is reduced (higher ENL, "
        "smoother texture), so KL, ENL, GLCM and SSIM measure the compositing as much as the generator. "
        "Compare with a single acquisition for speckle fidelity."
    )
