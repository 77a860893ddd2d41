"""A generated image: a GeoTIFF of VV [, VH] in dB with the provenance that made it.

::

    NAME.tif   float32, bands described "VV"[, "VH"], NaN = missing, DEFLATE + predictor 3,
               CRS and transform when the image is georeferenced (map generators; a prompt
               generator's image has none), tags: PROVENANCE (JSON), CALIBRATION (JSON),
               EMBEDDING_SOURCE (when known), per band polarisation / units / calibration_db_range

Every write goes to a temporary file that is checked complete (:func:`sarviz.scene.verify_written_tiff`:
GDAL may leave a short file on a full disk without raising) before it replaces the target.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarviz.atomic import atomic_path
from sarviz.calibration import Calibration
from sarviz.errors import GenerationError
from sarviz.formats.base import Artifact, register_artifact

#: the name an image gets when only its bytes are wanted (download buttons, uploads)
GENERATED_FILE = "generated.tif"


def _calibration(provenance: dict[str, Any]) -> Calibration:
    from sarviz.calibration import calibration_from_provenance

    try:
        return calibration_from_provenance(provenance)[0]
    except ValueError as exc:
        raise GenerationError(f"the provenance's calibration is not valid ({exc})") from None


@register_artifact
@dataclass
class GeneratedImage(Artifact):
    """The pixels and provenance of one generated image; ``crs``/``transform`` None = not georeferenced."""

    artifact: ClassVar[str] = "generated-image"
    what: ClassVar[str] = "generated image"
    FILES: ClassVar[tuple[str, ...]] = (GENERATED_FILE,)

    vv_db: np.ndarray
    vh_db: np.ndarray | None = None
    crs: Any = None
    transform: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def bands(self) -> dict[str, np.ndarray]:
        return {"VV": self.vv_db} if self.vh_db is None else {"VV": self.vv_db, "VH": self.vh_db}

    def save(self, path: str | os.PathLike[str]) -> Path:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        from sarviz.gdal_messages import gdal_write_errors, route_gdal_messages
        from sarviz.scene import verify_written_tiff

        route_gdal_messages()  # a failed write says one line of ours, not libtiff's on stderr
        path = Path(path)
        bands = {k: np.asarray(v, dtype=np.float32) for k, v in self.bands.items()}
        height, width = bands["VV"].shape
        geo = {"crs": self.crs, "transform": self.transform} if self.crs is not None else {}
        calibration = _calibration(self.provenance)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with atomic_path(path, suffix=".tif.part") as tmp, gdal_write_errors(path):
                with rasterio.open(
                    tmp,
                    "w",
                    driver="GTiff",
                    width=width,
                    height=height,
                    count=len(bands),
                    dtype="float32",
                    nodata=np.nan,
                    compress="DEFLATE",
                    predictor=3,
                    tiled=width >= 256 and height >= 256,
                    **geo,
                ) as dst:
                    dst.write(np.stack(list(bands.values())))
                    dst.descriptions = tuple(bands)
                    dst.update_tags(PROVENANCE=json.dumps(self.provenance, sort_keys=True, default=str))
                    if self.provenance.get("embedding_source"):
                        dst.update_tags(EMBEDDING_SOURCE=str(self.provenance["embedding_source"]))
                    for band, pol in enumerate(bands, start=1):
                        lo, hi = calibration.range(pol)
                        # the model's range: values at its ends are clipped, not measured (and the display stretch)
                        dst.update_tags(band, polarisation=pol, units="dB", calibration_db_range=json.dumps([lo, hi]))
                    dst.update_tags(CALIBRATION=json.dumps(calibration.to_dict(), sort_keys=True))
                verify_written_tiff(tmp, path)
        return path

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            return self.save(Path(tmp) / GENERATED_FILE).read_bytes()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "GeneratedImage":
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        path = Path(path)
        if not path.is_file():
            raise GenerationError(f"{path}: no such generated image")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    names = [d or "" for d in src.descriptions]
                    if "VV" not in names:
                        raise GenerationError(f"{path}: needs a band named VV, found {names}")
                    vv = src.read(names.index("VV") + 1, out_dtype="float32")
                    vh = src.read(names.index("VH") + 1, out_dtype="float32") if "VH" in names else None
                    prov = json.loads(src.tags().get("PROVENANCE", "{}"))
                    crs, transform = (src.crs, src.transform) if src.crs is not None else (None, None)
        except rasterio.errors.RasterioError as exc:
            raise GenerationError(f"{path}: not a readable GeoTIFF ({exc})") from None
        except ValueError as exc:
            raise GenerationError(f"{path}: its PROVENANCE tag is not JSON ({exc})") from None
        return cls(vv, vh, crs, transform, prov if isinstance(prov, dict) else {})
