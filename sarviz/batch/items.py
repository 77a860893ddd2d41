"""The work on one batch item, in two stages that run in different workers.

* :class:`SceneFetcher` (I/O bound): the scene at the point — from the scene folder
  (:meth:`sarviz.store.SceneStore.lookup`) or through the source chain (which fetches and
  caches) — written into the item's staging folder: ``scene.tif`` (all input layers),
  ``real.tif`` (VV/VH) and ``optical.tif``.
* :class:`ItemGenerator` (CPU/GPU bound): the model is built from its card ONCE; for each
  item it reads the staged scene, generates one image a seed (``generated_s000.tif`` …),
  writes the STAC Item and renames the staging folder into ``items/``.

Both return plain dicts (the manifest row so far) and never raise for a bad item: the error
goes into the row, so one failure never stops a run.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio import shutil as rio_shutil
from rasterio.io import MemoryFile

from sarviz.atomic import atomic_path
from sarviz.batch.points import BatchPoint
from sarviz.formats.batch_folder import OPTICAL_FILE, REAL_FILE, SCENE_FILE, BatchConfig, BatchFolder, generated_name
from sarviz.gdal_messages import gdal_write_errors, route_gdal_messages
from sarviz.scene import OPTICAL_BANDS, SAR_BANDS, Scene, read_scene, write_scene

if TYPE_CHECKING:  # pragma: no cover
    from sarviz.generators.base import MapGenerator
    from sarviz.sources.chain import SourceChain
    from sarviz.store import SceneStore

log = logging.getLogger("sarviz.batch")


def write_cog(
    path: Path, bands: np.ndarray, names: tuple[str, ...], crs: Any, transform: Any, tags: dict[str, str] | None = None
) -> Path:
    """A float32 cloud-optimised GeoTIFF (GDAL's COG driver), written atomically."""
    route_gdal_messages()  # a failed write says one line of ours, not libtiff's on stderr
    bands = np.asarray(bands, dtype=np.float32)
    count, height, width = bands.shape
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=np.nan,
    )
    with atomic_path(path, suffix=".tif.part") as tmp, MemoryFile() as mem, mem.open(**profile) as staging:
        staging.write(bands)
        staging.descriptions = names
        if tags:
            staging.update_tags(**tags)
        with gdal_write_errors(path):
            rio_shutil.copy(
                staging,
                tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                BLOCKSIZE=256 if min(width, height) >= 256 else 128,
            )
    return path


def s1_mode_of(scene: Scene) -> str:
    """ "single" (one acquisition), "composite" (several), or "unknown", from the scene's provenance.

    Sources record it as ``s1_mode`` or, per layer, as the Sentinel-1 ``composite`` method
    ("nearest" = one acquisition, "median" = a composite).
    """
    prov = scene.provenance or {}
    if prov.get("s1_mode") in ("single", "composite"):
        return prov["s1_mode"]

    def find(obj: Any) -> str | None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in ("composite", "s1_composite") and isinstance(value, str):
                    return {"nearest": "single", "median": "composite"}.get(value, value)
                hit = find(value)
                if hit:
                    return hit
        return None

    layers = prov.get("layers") or {}
    return find(layers.get("vv_db")) or find(prov.get("request")) or "unknown"


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


class SceneFetcher:
    """Stage 1: put the scene of a point into the item's staging folder."""

    def __init__(self, config: BatchConfig, out: str) -> None:
        self.config = config
        self.folder = BatchFolder(out)
        self._store: SceneStore | None = None
        self._chain: SourceChain | None = None

    def _scene(self, point: BatchPoint) -> Scene:
        from sarviz.settings import Settings

        cfg = self.config
        scenes = cfg.scenes or str(Settings.load().scenes)
        if cfg.sources == "local":
            from sarviz.store import SceneStore

            if self._store is None:
                self._store = SceneStore(scenes)
            self._store.refresh_if_changed()
            return self._store.lookup(point.lat, point.lon, size_px=cfg.size, grid="native")
        if self._chain is None:
            from sarviz.sources.chain import SourceChain

            settings = Settings.load()
            settings.scenes = Path(scenes)
            order = settings.sources if cfg.sources == "auto" else ("local", cfg.sources)
            self._chain = SourceChain.from_settings(settings, order=order)
        result = self._chain.get_scene(
            point.lat,
            point.lon,
            size_px=cfg.size,
            year=point.year or cfg.year,
            s1_composite="nearest" if cfg.s1_mode == "single" else "median",
        )
        return result.scene

    def fetch(self, point: BatchPoint) -> dict[str, Any]:
        row = {
            "id": point.id,
            "lat": point.lat,
            "lon": point.lon,
            "class": point.cls,
            "region": point.region,
            "seeds": ",".join(str(s) for s in self.config.seeds),
            "worker": f"fetch:{os.getpid()}",
        }
        started = time.perf_counter()
        staging = self.folder.staging(point.id)
        try:
            scene = self._scene(point)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            mode = s1_mode_of(scene)
            prov = json.dumps({**scene.provenance, "s1_mode": mode}, sort_keys=True, default=str)
            write_scene(scene, staging / SCENE_FILE)
            if scene.vv_db is not None and scene.vh_db is not None:
                write_cog(
                    staging / REAL_FILE,
                    np.stack([scene.vv_db, scene.vh_db]),
                    SAR_BANDS,
                    scene.crs,
                    scene.transform,
                    {"PROVENANCE": prov, "S1_MODE": mode, "DATES": json.dumps(scene.dates)},
                )
            if scene.optical is not None:
                write_cog(
                    staging / OPTICAL_FILE,
                    scene.optical,
                    OPTICAL_BANDS,
                    scene.crs,
                    scene.transform,
                    {"PROVENANCE": prov, "DATES": json.dumps(scene.dates)},
                )
            row.update(status="fetched", scene_id=scene.scene_id, s1_mode=mode, staging=str(staging))
        except Exception as exc:  # noqa: BLE001 — any failure of one point is recorded, the run goes on
            shutil.rmtree(staging, ignore_errors=True)
            log.warning("item %s: fetch failed: %s", point.id, traceback.format_exc())
            row.update(status="failed", stage="fetch", error=_error_text(exc))
        row["fetch_s"] = round(time.perf_counter() - started, 4)
        return row


class ItemGenerator:
    """Stage 2: the model (loaded once) makes the item's images, its STAC Item, and publishes it."""

    def __init__(self, config: BatchConfig, out: str) -> None:
        self.config = config
        self.folder = BatchFolder(out)
        self.load_error: str | None = None
        self.generator: MapGenerator | None = None
        self._refetcher: SceneFetcher | None = None  # a retried item whose staged scene is gone
        try:
            from sarviz.generators.base import MapGenerator
            from sarviz.registry import ModelRegistry

            generator = ModelRegistry().generator(config.model)
            if not isinstance(generator, MapGenerator):
                raise TypeError(f"a batch needs a scene → SAR model; this one is a {generator.interface!r} model")
            self.generator = generator
        except Exception as exc:  # noqa: BLE001 — reported on every item, not as a dead worker
            self.load_error = f"model {config.model!r} cannot be loaded: {_error_text(exc)}"

    def pid(self) -> int:
        return os.getpid()

    def generate(self, row: dict[str, Any]) -> dict[str, Any]:
        from sarviz.generators.base import GenerationRequest

        row = dict(row)
        row["worker"] = f"{row.get('worker', '')} generate:{os.getpid()}".strip()
        item_id = row["id"]
        staging = self.folder.staging(item_id)
        started = time.perf_counter()
        write_s = 0.0
        try:
            earlier = self._earlier_attempt(row, staging)
            if earlier is not None:
                return earlier
        except Exception as exc:  # noqa: BLE001 — recorded in the manifest; the run goes on
            log.warning("item %s: re-fetch of a retried item failed: %s", item_id, traceback.format_exc())
            row.update(status="failed", stage="fetch", error=_error_text(exc), item="", finished="")
            row.pop("staging", None)
            return row
        try:
            if self.load_error or self.generator is None:
                raise RuntimeError(self.load_error or "the model was not loaded")
            scene = read_scene(staging / SCENE_FILE)
            provenance: dict[str, Any] = {}
            assets: dict[str, dict[str, Any]] = {}
            for seed in self.config.seeds:
                result = self.generator.generate(scene, GenerationRequest(seed=int(seed)))
                if result.vh_db is None:  # a batch item's images hold both polarisations
                    raise ValueError(f"model {self.config.model!r} made no VH band; a batch needs VV and VH")
                t1 = time.perf_counter()
                name = generated_name(seed)
                prov = {**result.provenance, "batch_item": item_id, "scene_s1_mode": row.get("s1_mode")}
                write_cog(
                    staging / f"{name}.tif",
                    np.stack([result.vv_db, result.vh_db]),
                    SAR_BANDS,
                    result.crs,
                    result.transform,
                    {"PROVENANCE": json.dumps(prov, sort_keys=True, default=str)},
                )
                write_s += time.perf_counter() - t1
                provenance[str(seed)] = prov
                assets[name] = {
                    "file": f"{name}.tif",
                    "title": f"generated Sentinel-1 VV/VH (dB), seed {seed}",
                    "roles": ["data", "synthetic"],
                    "bands": SAR_BANDS,
                }
            t2 = time.perf_counter()
            if (staging / REAL_FILE).is_file():
                assets["real"] = {
                    "file": REAL_FILE,
                    "title": f"real Sentinel-1 VV/VH (dB), {row.get('s1_mode')}",
                    "roles": ["data", "reference"],
                    "bands": SAR_BANDS,
                }
            if (staging / OPTICAL_FILE).is_file():
                assets["optical"] = {
                    "file": OPTICAL_FILE,
                    "title": "Sentinel-2 B2, B3, B4, B8 (reflectance)",
                    "roles": ["data", "reference"],
                    "bands": OPTICAL_BANDS,
                }
            if self.config.keep_scene:
                assets["scene"] = {
                    "file": SCENE_FILE,
                    "title": "input scene (sarviz scene file, 71 bands)",
                    "roles": ["source"],
                }
            else:  # the hand-over file of the two stages; the item keeps real and optical only
                (staging / SCENE_FILE).unlink()
            # generate_s: the whole stage but the writing (reading the staged scene, the model, the seeds)
            row.update(
                status="done",
                error="",
                stage="",
                generate_s=round(time.perf_counter() - started - write_s, 4),
                finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                item=self.folder.item_href(item_id),
            )
            self._write_item(scene, row, provenance, assets, staging)
            write_s += time.perf_counter() - t2
            row["write_s"] = round(write_s, 4)
            self._publish(staging, item_id)
        except Exception as exc:  # noqa: BLE001 — recorded in the manifest; the run goes on
            shutil.rmtree(staging, ignore_errors=True)
            log.warning("item %s: generation failed: %s", item_id, traceback.format_exc())
            row.update(
                status="failed",
                stage="generate",
                error=_error_text(exc),
                item="",
                finished="",
                generate_s=round(time.perf_counter() - started, 4),
            )
        row.pop("staging", None)
        return row

    def _earlier_attempt(self, row: dict[str, Any], staging: Path) -> dict[str, Any] | None:
        """What an earlier attempt of this item left, when Ray retries it on a new actor.

        The actor may die after publishing the item or half-way (after handing over ``scene.tif``,
        before the rename), and the retried task then finds no staged scene. A published item is
        whole (the rename is one step): it is done, with its stored record. Anything else is
        done again from the fetch stage. Returns the finished row, or None to generate now.
        """
        item_id = row["id"]
        if self.folder.item_json(item_id).is_file():
            done = {**row, **self.folder.item_record(item_id), "worker": row.get("worker", "")}
            done.update(status="done", error="", stage="")
            done.pop("staging", None)
            log.info("item %s: a retried task found it already published", item_id)
            return done
        if (staging / "scene.tif").is_file():
            return None
        log.info("item %s: a retried task found no staged scene; fetching it again", item_id)
        if self._refetcher is None:
            self._refetcher = SceneFetcher(self.config, str(self.folder.root))
        point = BatchPoint(
            id=item_id,
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            year=int(row["year"]) if row.get("year") not in (None, "") else None,
            cls=row.get("class") or "",
            region=row.get("region") or "",
        )
        fetched = self._refetcher.fetch(point)
        if fetched["status"] != "fetched":
            fetched.pop("staging", None)
            return {**row, **fetched, "worker": row.get("worker", "")}
        row.update({k: v for k, v in fetched.items() if k not in ("worker", "staging")})
        return None

    def _write_item(
        self,
        scene: Scene,
        row: dict[str, Any],
        provenance: dict[str, Any],
        assets: dict[str, dict[str, Any]],
        staging: Path,
    ) -> None:
        from sarviz.formats.stac_catalog import build_item, write_item

        final = self.folder.item_dir(row["id"])
        record = {k: v for k, v in row.items() if k != "staging"}
        record["write_s"] = None  # known only after this write; the manifest has it
        item = build_item(
            row["id"],
            final,
            crs=scene.crs,
            transform=scene.transform,
            width=scene.width,
            height=scene.height,
            bbox_wgs84=scene.bounds_wgs84,
            dates=scene.dates,
            assets=assets,
            properties={
                "model": self.config.model,
                "seeds": list(self.config.seeds),
                "point": [row["lon"], row["lat"]],
                "class": row.get("class", ""),
                "region": row.get("region", ""),
                "scene_id": scene.scene_id,
                "s1_mode": row.get("s1_mode"),
                "scene_dates": scene.dates,
                "scene_provenance": scene.provenance,
                "provenance": provenance,
                "record": record,
            },
        )
        write_item(item, staging / BatchFolder.item_json_name(row["id"]))

    def _publish(self, staging: Path, item_id: str) -> None:
        """Rename the complete staging folder into items/ (one step: the item appears whole)."""
        final = self.folder.item_dir(item_id)
        if final.exists():  # a retried task whose first attempt published before dying
            shutil.rmtree(final)
        os.replace(staging, final)
