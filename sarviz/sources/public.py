"""The public, no-account source: AlphaEarth mosaic embedding + Planetary Computer Sentinel.

One service a module: :mod:`sarviz.sources.aef_mosaic` (the AlphaEarth Zarr mosaic on
Source Cooperative) and :mod:`sarviz.sources.planetary` (Sentinel-1/-2 from the Planetary
Computer STAC API). This module joins them into one :class:`~sarviz.sources.base.Source`
and re-exports their public names for existing callers.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from sarviz.sources.aef_mosaic import (  # noqa: F401  (re-exported)
    _LOCAL_ZARR_READ,
    AEF_FIRST_YEAR,
    AEF_MOSAIC_URL,
    AEF_NODATA,
    AEF_SERVICE,
    AlphaEarthMosaic,
    _cancel_store_tasks,
    _PixelLookup,
    dequantize,
    dequantize_arithmetic,
    gather_dequantize,
)
from sarviz.sources.base import (  # noqa: F401
    FetchProgress,
    FetchRequest,
    LayerReport,
    NoDataHere,
    SourceError,
    SourceResult,
    classify_error,
    scale_progress,
)
from sarviz.sources.planetary import PC_SERVICE, PC_STAC_URL, PlanetaryComputerSentinel  # noqa: F401
from sarviz.sources.s1_geometry import estimate_incidence_angle, gamma0_to_sigma0_db  # noqa: F401


class PublicSource:
    """Embedding from the AlphaEarth mosaic, Sentinel-1/2 from the Planetary Computer. No account."""

    name = "public"

    def __init__(
        self,
        aef_url: str = AEF_MOSAIC_URL,
        stac_url: str = PC_STAC_URL,
        timeout: float = 20.0,
        sign: bool = True,
        aef_storage_options: dict[str, Any] | None = None,
        s1_collection: str = "sentinel-1-rtc",
    ) -> None:
        self.mosaic = AlphaEarthMosaic(aef_url, timeout=timeout, storage_options=aef_storage_options)
        self.sentinel = PlanetaryComputerSentinel(stac_url, timeout=timeout, sign=sign, s1_collection=s1_collection)

    def fetch_embedding(self, request: FetchRequest, result: SourceResult, progress: FetchProgress) -> None:
        progress(0.0, "reading the AlphaEarth embedding mosaic")
        crs, transform = request.grid
        emb = self.mosaic.read_patch(request.year, crs, transform, request.size_px, request.size_px)
        if not np.isfinite(emb).any():
            raise NoDataHere(
                f"AlphaEarth embedding: {AEF_SERVICE} has no embedding at ({request.lat:.4f}, "
                f"{request.lon:.4f}) for {request.year} (open ocean, polar region or outside coverage)",
                service=AEF_SERVICE,
                layer="embedding",
            )
        result.add(
            "embedding",
            emb,
            LayerReport(
                "embedding",
                "public",
                "AlphaEarth annual embedding mosaic (Source Cooperative, Zarr v3)",
                str(request.year),
                {
                    "url": self.mosaic.url,
                    "mosaic_crs": self.mosaic.crs.to_string(),
                    "resampling": "nearest",
                    "quantisation": "int8, (q/127.5)²·sign(q)",
                },
            ),
        )
        result.dates["embedding"] = str(request.year)
        missing = float(np.mean(~np.isfinite(emb[0])))
        if missing > 0.01:
            result.warnings.append(
                f"AlphaEarth embedding: {missing:.0%} of the patch has no embedding (coast, or the mosaic's edge)"
            )
        progress(1.0, "embedding done")

    def fetch(
        self, request: FetchRequest, groups: Sequence[str], progress: FetchProgress | None = None
    ) -> SourceResult:
        started = time.perf_counter()
        result = SourceResult(source=self.name)
        steps = {"embedding": self.fetch_embedding, "s1": self.sentinel.fetch_s1, "s2": self.sentinel.fetch_s2}
        groups = [g for g in groups if g in steps]
        for k, group in enumerate(groups):
            sub = scale_progress(progress, k / len(groups), (k + 1) / len(groups))
            try:
                steps[group](request, result, sub)
            except SourceError as exc:
                result.fail(group, exc)
        result.seconds = time.perf_counter() - started
        return result
