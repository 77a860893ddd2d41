"""``sarviz dataset build``: training patches from a scene folder or fetched for points/a region.

Every item (a window of a scene, or a fetched point) ends as a *record* in
``OUT/.build/records/<id>.json`` — "written" with its manifest fields, or "dropped" with the
reason — after its patch file is in place (both writes atomic). A run skips items that
have a record, so an interrupted or partly failed build is resumed by running the same
command again; failures (network, unreadable file) leave no record and are retried. The
manifest, the splits and dataset.json are then rebuilt from the records (cheap: no
pixels), so a change of split fractions, block size or seed needs no refetch.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from rasterio.windows import Window

import sarviz
from sarviz.atomic import write_csv_atomic
from sarviz.atomic import write_json as write_json_atomic
from sarviz.calibration import DEFAULT_CALIBRATION, Calibration
from sarviz.constants import DEFAULT_ANGLE_DEG, SPLITS
from sarviz.datasets import landcover as lc
from sarviz.datasets.splits import SplitSpec, assign_splits
from sarviz.errors import DatasetError, SarvizError, SceneError
from sarviz.formats.patch_dataset import (
    FAILURES_FILE,
    FORMAT,
    INFO_FILE,
    OPTIONS_FILE,
    PATCH_DIR,
    RECORDS_DIR,
    PatchDatasetFolder,
)
from sarviz.regions import densified, read_region
from sarviz.scene import (
    TRAINING_PATCH_BANDS,
    Scene,
    footprint_wgs84,
    read_scene,
    read_scene_meta,
    utm_crs_for,
    validate_latlon,
    write_scene,
)
from sarviz.sources.base import SourceTimeout, SourceUnavailable
from sarviz.store import SceneStore

#: progress(done, total, message)
Progress = Callable[[int, int, str], None]
#: build options that change what a record holds: a resumed build must use the same ones
RECORD_OPTIONS = ("size", "stride", "max_missing", "allow_smaller", "assume_angle", "landcover", "mode")
MAX_POINTS = 200_000  # a region grid larger than this is almost certainly a unit mistake
# zstd level 1 instead of GDAL's 9: a 512² patch is written in ~0.4 s of CPU instead of ~1.8 s,
# a few % larger, decoded (what training does, many times) as fast (benchmarks/RESULTS_datasets.md)
PATCH_ZSTD_LEVEL = 1


@dataclass
class BuildOptions:
    size: int = 512
    stride: int | None = None  # default: size // 2 (50 % overlap, as the HuiYanEarth-SAR reference)
    split: SplitSpec = field(default_factory=SplitSpec)
    max_missing: float = 0.01  # fraction of pixels missing VV, VH or the embedding above which a patch is dropped
    allow_smaller: bool = False  # a scene smaller than size gives one patch of its own size
    assume_angle: float | None = DEFAULT_ANGLE_DEG  # angle for scenes without one; None: skip such scenes
    landcover: str = "auto"
    landcover_points: Path | None = None
    workers: int = 2
    calibration: Calibration = DEFAULT_CALIBRATION

    def check(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 16 <= self.size <= 4096:
            raise DatasetError(f"--size must be a whole number of pixels in [16, 4096], got {self.size!r}")
        if self.stride is not None and (not isinstance(self.stride, int) or not 1 <= self.stride <= 4096):
            raise DatasetError(f"--stride must be a whole number of pixels ≥ 1, got {self.stride!r}")
        if not 0.0 <= self.max_missing <= 1.0:
            raise DatasetError(f"--max-missing must be a fraction in [0, 1], got {self.max_missing!r}")
        if not isinstance(self.workers, int) or not 1 <= self.workers <= 64:
            raise DatasetError(f"--workers must be 1–64, got {self.workers!r}")
        if self.assume_angle is not None and not 10.0 <= self.assume_angle <= 70.0:
            raise DatasetError(f"--assume-angle must be an incidence angle in 10–70°, got {self.assume_angle!r}")
        if self.landcover not in lc.METHODS:
            raise DatasetError(f"--landcover must be one of {', '.join(lc.METHODS)}, got {self.landcover!r}")

    @property
    def effective_stride(self) -> int:
        """The stride used: ``stride`` or half the patch size (seed 000: 512 px at stride 256)."""
        return self.stride or max(1, self.size // 2)

    def record_options(self, mode: str) -> dict[str, Any]:
        return {
            "size": self.size,
            "stride": self.effective_stride,
            "max_missing": self.max_missing,
            "allow_smaller": self.allow_smaller,
            "assume_angle": self.assume_angle,
            "landcover": self.landcover,
            "mode": mode,
        }


@dataclass
class BuildReport:
    out: Path
    counts: dict[str, Any]
    failures: list[tuple[str, str]]
    skipped_scenes: list[tuple[str, str]]
    written_now: int = 0
    resumed: int = 0

    def summary(self) -> str:
        c = self.counts
        if not any(c[s] for s in SPLITS):
            return "\n".join([f"{self.out}: no patches were written"] + self._details())
        dropped = ", ".join(f"{k} {v}" for k, v in c["dropped"].items() if v) or "none"
        lines = [
            f"{self.out}: train {c['train']}, val {c['val']}, test {c['test']} patches "
            f"({self.written_now} new, {self.resumed} from an earlier run); dropped: {dropped}"
        ]
        return "\n".join(lines + self._details())

    @property
    def empty(self) -> bool:
        return not any(self.counts[s] for s in SPLITS)

    def _details(self) -> list[str]:
        lines = []
        dropped = {k: v for k, v in self.counts["dropped"].items() if v}
        if self.empty and dropped:
            lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
        if self.skipped_scenes:
            lines.append(
                f"skipped {len(self.skipped_scenes)} scene(s): "
                + "; ".join(f"{s} ({why})" for s, why in self.skipped_scenes[:5])
                + (" …" if len(self.skipped_scenes) > 5 else "")
            )
        if self.failures:
            lines.append(
                f"{len(self.failures)} item(s) failed (listed in {self.out / FAILURES_FILE}; run the same "
                "command again to retry them)"
            )
        return lines


# -- what a scene says about itself ---------------------------------------------------------------
def embedding_source_of(provenance: dict[str, Any], tags: dict[str, str] | None = None) -> tuple[str, str]:
    """("alphaearth" | "proxy:<how>", basis) for a scene's embedding layer.

    A proxy is whatever the scene marks as one (``provenance["embedding_source"]`` or the
    ``EMBEDDING_SOURCE`` tag mentioning "proxy"). Fetched scenes record the embedding's
    service (AlphaEarth by construction). A scene that records nothing is *assumed* to be
    AlphaEarth and the basis says so.
    """
    value = provenance.get("embedding_source") if isinstance(provenance, dict) else None
    if value is None and tags:  # EMBEDDING_SOURCE, or another tool's tag naming the embedding
        value = tags.get("EMBEDDING_SOURCE") or next(
            (v for k, v in sorted(tags.items()) if "EMBEDDING" in k.upper() and "proxy" in str(v).lower()), None
        )
    if value is not None:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if "proxy" in text.lower():
            return (text if text.startswith("proxy") else f"proxy:{text}"), "recorded by the scene"
        return "alphaearth", f"recorded by the scene ({text})"
    layer = ((provenance or {}).get("layers") or {}).get("embedding") if isinstance(provenance, dict) else None
    if layer:
        return "alphaearth", f"fetched: {layer.get('source', '')} {layer.get('product', '')}".strip()
    return "alphaearth", "unrecorded: assumed AlphaEarth (the scene marks no proxy)"


def s1_mode_of(provenance: dict[str, Any]) -> str:
    """ "composite" for a multi-acquisition S1 composite (median), else "single"."""
    prov = provenance or {}
    request = prov.get("request") or {}
    layer = (prov.get("layers") or {}).get("vv_db") or {}
    text = f"{layer.get('product', '')}".lower()
    if "median" in text or (request.get("s1_composite") == "median" and layer):
        return "composite"
    return "single"


def orbit_of(scene: Scene) -> tuple[str, str]:
    prov = scene.provenance or {}
    detail = ((prov.get("layers") or {}).get("vv_db") or {}).get("detail") or {}
    orbit = (
        prov.get("orbit_pass")
        or detail.get("orbit_state")
        or scene.dates.get("s1_pass")
        or (prov.get("request") or {}).get("s1_pass")
        or ""
    )
    rel = prov.get("relative_orbit") or detail.get("relative_orbit") or ""
    if isinstance(rel, float) and rel.is_integer():  # GeoJSON/EE metadata give 110.0
        rel = int(rel)
    return str(orbit).lower(), str(rel)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text).strip("._")[:150] or "patch"


# -- one patch ---------------------------------------------------------------------------------------
class _Context:
    """Shared state of one build: paths, options, labelled points (read-only in workers)."""

    def __init__(self, out: Path, options: BuildOptions) -> None:
        self.out = out
        self.options = options
        self.points: lc.LabelledPoints | None = None
        if options.landcover in ("auto", "embedding-knn"):
            folder = options.landcover_points or lc.default_points_folder()
            if folder is not None:
                self.points = lc.LabelledPoints.load(folder)
            elif options.landcover == "embedding-knn":
                raise DatasetError(
                    "--landcover embedding-knn needs labelled AlphaEarth points: pass "
                    "--landcover-points DIR (CSV files with A00..A63 and dw_label)"
                )

    def record_path(self, item_id: str) -> Path:
        return self.out / RECORDS_DIR / f"{item_id}.json"

    def done(self, item_id: str) -> bool:
        """Finished: dropped, or written with its patch file still there (a deleted patch is redone)."""
        try:
            record = json.loads(self.record_path(item_id).read_text())
        except (OSError, ValueError):
            return False
        return record.get("status") == "dropped" or (self.out / str(record.get("file", ""))).is_file()


def _missing_fraction(patch: Scene) -> float:
    if patch.vv_db is None or patch.vh_db is None or patch.embedding is None:
        return 1.0
    bad = ~np.isfinite(patch.vv_db) | ~np.isfinite(patch.vh_db) | ~np.isfinite(patch.embedding).all(0)
    return float(bad.mean())


def _process_patch(
    ctx: _Context,
    item_id: str,
    patch: Scene,
    source_scene: str,
    extra: dict[str, Any],
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check, label and write one patch; returns its record (also written to disk)."""
    opts = ctx.options
    emb_source, emb_basis = embedding_source_of(patch.provenance, tags)
    missing = _missing_fraction(patch)
    record: dict[str, Any] = {"id": item_id, "source_scene": source_scene, "missing_fraction": round(missing, 5)}
    if missing > opts.max_missing or missing >= 1.0:  # an empty patch never counts as a sample
        record.update(status="dropped", reason="missing_pixels")
        write_json_atomic(ctx.record_path(item_id), record)
        return record
    angle_note = "scene"
    angle = patch.angle_deg
    if angle is None or not np.isfinite(angle).any():
        # scenes reaching here have an angle or an assumed one (checked per scene / per point)
        angle = np.full(patch.shape, opts.assume_angle, dtype=np.float32)
        patch = replace(patch, angle_deg=angle)
        angle_note = f"assumed {opts.assume_angle:g} deg (the scene has no incidence angle)"
    land = lc.landcover_of(patch, opts.landcover, ctx.points, emb_source)
    west, south, east, north = footprint_wgs84(patch.crs, patch.transform, patch.width, patch.height)
    lat, lon = patch.center_latlon
    orbit, rel = orbit_of(patch)
    s1_mode = s1_mode_of(patch.provenance)
    date = str(patch.dates.get("s1", "") or "")
    if s1_mode == "single":  # one acquisition: its day; a composite keeps its date range
        date = date[:10]
    provenance = {
        "scene_source": (patch.provenance or {}).get("source", ""),
        "dataset": (patch.provenance or {}).get("dataset"),
        "crs": patch.crs.to_string(),
        "angle": angle_note,
        "embedding_basis": emb_basis,
        "s1_mode": s1_mode,
        "landcover_method": land.method,
        "missing_fraction": round(missing, 5),
        **extra,
    }
    file = f"{PATCH_DIR}/{item_id}.tif"
    patch.scene_id = item_id
    patch.provenance = {**(patch.provenance or {}), "dataset_patch": provenance}
    write_scene(
        patch,
        ctx.out / file,
        bands=TRAINING_PATCH_BANDS,
        zstd_level=PATCH_ZSTD_LEVEL,
        extra_tags={"EMBEDDING_SOURCE": emb_source, "SARVIZ_PATCH_FORMAT": FORMAT},
    )
    angle_mean = float(np.nanmean(angle))
    record.update(
        status="written",
        file=file,
        lon=round(lon, 6),
        lat=round(lat, 6),
        date=date,
        orbit=orbit,
        relative_orbit=rel,
        angle_mean=round(angle_mean, 3),
        landcover=land.label,
        landcover_fractions=json.dumps(land.fractions, sort_keys=True) if land.fractions else "",
        embedding_source=emb_source,
        provenance=json.dumps(provenance, sort_keys=True, default=str),
        width=patch.width,
        height=patch.height,
        footprint=[west, south, east, north],
        s1_mode=s1_mode,
        angle_assumed=angle_note != "scene",
        landcover_method=land.method,
    )
    write_json_atomic(ctx.record_path(item_id), record)
    return record


# -- windows of a scene -----------------------------------------------------------------------------
def scene_windows(width: int, height: int, size: int, stride: int, allow_smaller: bool) -> list[Window] | str:
    """Windows of ``size`` at ``stride`` covering the scene (the last row/column is shifted to end
    at the edge so nothing is lost); a reason string when the scene is too small."""
    if width < size or height < size:
        if not allow_smaller:
            return f"smaller than --size ({width}x{height} < {size}); --allow-smaller keeps it as one patch"
        return [Window(0, 0, width, height)]

    def starts(n: int) -> list[int]:
        out = list(range(0, n - size + 1, stride))
        if out[-1] != n - size:
            out.append(n - size)
        return out

    return [Window(c, r, size, size) for r in starts(height) for c in starts(width)]


def _run_items(
    items: list[tuple[str, Callable[[], dict[str, Any] | None]]], workers: int, progress: Progress | None
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Run item jobs on a thread pool (I/O-bound: COG reads/writes and HTTP release the GIL)."""
    records: list[dict] = []
    failures: list[tuple[str, str]] = []
    total = len(items)
    if not items:
        return records, failures
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(job): item_id for item_id, job in items}
        for n, fut in enumerate(as_completed(futures), 1):
            item_id = futures[fut]
            try:
                record = fut.result()
            except (SarvizError, OSError, ValueError, MemoryError) as exc:  # one bad item: report it, go on
                reason = " ".join(str(exc).split()) or type(exc).__name__
                if isinstance(exc, MemoryError):
                    reason = f"out of memory ({reason}); lower --workers or --size"
                failures.append((item_id, reason))
                if progress:
                    progress(n, total, f"{item_id}: FAILED: {reason}")
                continue
            if record is not None:
                records.append(record)
                if progress:
                    state = "ok" if record["status"] == "written" else f"dropped ({record['reason']})"
                    progress(n, total, f"{item_id}: {state}")
    return records, failures


def _check_resume(out: Path, options: BuildOptions, mode: str) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file; a dataset is a folder")
    path = out / OPTIONS_FILE
    now = options.record_options(mode)
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except ValueError:
            before = {}
        changed = {k: (before.get(k), now[k]) for k in RECORD_OPTIONS if k in before and before.get(k) != now[k]}
        if changed:
            what = ", ".join(f"{k} {a!r} → {b!r}" for k, (a, b) in changed.items())
            raise DatasetError(
                f"{out} was built with other patch options ({what}); use a new --out folder "
                "(split options may change freely)"
            )
    elif out.exists() and any(out.iterdir()) and not (out / INFO_FILE).exists():
        raise DatasetError(f"{out} exists and is not a sarviz dataset; choose an empty or new --out folder")
    write_json_atomic(path, now)


# -- mode 1: a scene folder ----------------------------------------------------------------------------
def build_from_scenes(
    scenes: str | os.PathLike, out: str | os.PathLike, options: BuildOptions, progress: Progress | None = None
) -> BuildReport:
    options.check()
    out = Path(out).expanduser()
    try:
        store = SceneStore(scenes)
    except MemoryError:  # the store scans the pixels of GeoTIFFs that lack sarviz's layer tags
        raise DatasetError(
            f"indexing {scenes} ran out of memory: a GeoTIFF there without sarviz layer tags is too "
            "large to scan; keep only scene files in the folder"
        ) from None
    if not len(store):
        problems = f" ({len(store.problems)} unreadable: {store.problems[0]})" if store.problems else ""
        raise DatasetError(f"no scene files in {store.folder}{problems}; import or fetch scenes first")
    _check_resume(out, options, "scenes")
    ctx = _Context(out, options)
    stride = options.effective_stride
    skipped: list[tuple[str, str]] = [(Path(p.split(":")[0]).name, p) for p in store.problems]
    items: list[tuple[str, Callable]] = []
    resumed = 0
    for entry in store:
        needed = [
            name
            for name, layer in (
                ("Sentinel-1 VV/VH", "vv_db"),
                ("Sentinel-1 VV/VH", "vh_db"),
                ("embedding", "embedding"),
            )
            if layer not in entry.layers
        ]
        if needed:
            skipped.append((entry.scene_id, f"no {' and no '.join(dict.fromkeys(needed))} layer"))
            continue
        if "angle_deg" not in entry.layers and options.assume_angle is None:
            skipped.append((entry.scene_id, "no incidence angle (and --no-assumed-angle)"))
            continue
        windows = scene_windows(entry.width, entry.height, options.size, stride, options.allow_smaller)
        if isinstance(windows, str):
            skipped.append((entry.scene_id, windows))
            continue
        tags = read_scene_meta(entry.path)["tags"]
        for win in windows:
            item_id = _safe_id(f"{entry.scene_id}_r{int(win.row_off)}_c{int(win.col_off)}")
            if ctx.done(item_id):
                resumed += 1
                continue

            def job(entry=entry, win=win, item_id=item_id, tags=tags) -> dict[str, Any]:
                patch = read_scene(entry.path, window=win)
                return _process_patch(
                    ctx,
                    item_id,
                    patch,
                    entry.scene_id,
                    {"window": [int(win.col_off), int(win.row_off), int(win.width), int(win.height)]},
                    tags,
                )

            items.append((item_id, job))
    records, failures = _run_items(items, options.workers, progress)
    return finalise(
        out,
        options,
        failures=failures,
        skipped_scenes=skipped,
        written_now=sum(r["status"] == "written" for r in records),
        resumed=resumed,
    )


# -- mode 2: points / a region through the sources -------------------------------------------------
def points_in_region(
    geojson: str | os.PathLike, size: int, stride: int | None = None, res_m: float = 10.0
) -> list[dict[str, Any]]:
    """Patch centres on a regular grid (local UTM of the region, spacing stride·res) inside a
    GeoJSON (Multi)Polygon; each {lat, lon, id}."""
    from pyproj import Transformer
    from shapely.ops import transform as shp_transform
    from shapely.ops import unary_union

    path = Path(geojson)
    try:
        geoms = [poly for poly, _ in read_region(path)]
    except SceneError as exc:
        raise DatasetError(str(exc)) from None
    region = unary_union(geoms)
    c = region.centroid
    crs = utm_crs_for(c.y, c.x)
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    step = (stride or size) * res_m
    local = shp_transform(fwd, densified(region, step))
    minx, miny, maxx, maxy = local.bounds
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):  # beyond what one UTM zone's projection reaches
        lon_w, _, lon_e, _ = region.bounds
        raise DatasetError(
            f"{path}: the region ({lon_e - lon_w:.0f}° of longitude) reaches too far from its UTM zone "
            f"({crs.to_string()}) for one patch grid; split it into smaller regions"
        )
    n = math.ceil((maxx - minx) / step + 1) * math.ceil((maxy - miny) / step + 1)
    if n > MAX_POINTS:
        raise DatasetError(
            f"{path}: the region needs about {n:,} patches of {size} px (more than {MAX_POINTS:,}); "
            "split it or raise --stride"
        )
    from shapely import contains_xy

    xs = np.arange(minx + step / 2, maxx + step / 2, step)
    ys = np.arange(maxy - step / 2, miny - step / 2, -step)
    gx, gy = np.meshgrid(xs, ys)
    inside = contains_xy(local, gx.ravel(), gy.ravel())
    lons, lats = back.transform(gx.ravel()[inside], gy.ravel()[inside])
    if len(lons):  # (no point at all is said by build_from_points)
        from sarviz.regions import check_grid_covers

        try:
            check_grid_covers(region, lons, lats, step, f"{path}")
        except SceneError as exc:
            raise DatasetError(str(exc)) from None
    return [{"lat": float(la), "lon": float(lo), "id": None, "year": None} for la, lo in zip(lats, lons)]


def build_from_points(
    points: list[dict[str, Any]],
    out: str | os.PathLike,
    options: BuildOptions,
    year: int,
    chain_factory: Callable[[], Any],
    fetch_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Fetch one patch per point through a source chain (one chain per worker thread)."""
    options.check()
    if not points:
        raise DatasetError("no points to fetch")
    out = Path(out).expanduser()
    _check_resume(out, options, "points")
    ctx = _Context(out, options)
    local = threading.local()
    fetch_options = dict(fetch_options or {})
    items: list[tuple[str, Callable]] = []
    failures: list[tuple[str, str]] = []
    resumed = 0
    seen: set[str] = set()
    for pt in points:
        y = int(pt.get("year") or year)
        try:
            lat, lon = validate_latlon(pt["lat"], pt["lon"])
        except SceneError as exc:
            failures.append((str(pt.get("id") or f"{pt['lat']},{pt['lon']}"), str(exc)))
            continue
        item_id = _safe_id(
            str(pt["id"])
            if pt.get("id") and not str(pt["id"]).startswith(("line ", "#"))
            else f"pt_{lat:+.5f}_{lon:+.5f}_{y}"
        )
        if item_id in seen:
            failures.append((item_id, "duplicate point id"))
            continue
        seen.add(item_id)
        if ctx.done(item_id):
            resumed += 1
            continue

        def job(lat=lat, lon=lon, y=y, item_id=item_id) -> dict[str, Any]:
            if not hasattr(local, "chain"):
                local.chain = chain_factory()
            for attempt in range(2):  # one retry for a transient network failure
                try:
                    result = local.chain.get_scene(lat, lon, size_px=options.size, year=y, **fetch_options)
                    break
                except (SourceTimeout, SourceUnavailable):
                    if attempt:
                        raise
            scene = result.scene
            lacking = [
                name
                for name, layer in (
                    ("Sentinel-1 VV", "vv_db"),
                    ("Sentinel-1 VH", "vh_db"),
                    ("AlphaEarth embedding", "embedding"),
                )
                if getattr(scene, layer) is None
            ]
            if lacking:
                why = "; ".join(
                    f"{layer}: {result.missing.get(layer, '')}"
                    for layer in ("vv_db", "vh_db", "embedding")
                    if layer in result.missing
                )
                raise SceneError(f"no {', '.join(lacking)} here ({why})")
            if scene.angle_deg is None and options.assume_angle is None:
                raise SceneError("the source gave no incidence angle (and --no-assumed-angle)")
            return _process_patch(
                ctx, item_id, scene, scene.scene_id, {"point": [lon, lat], "year": y, "fetch": fetch_options}
            )

        items.append((item_id, job))
    records, run_failures = _run_items(items, options.workers, progress)
    return finalise(
        out,
        options,
        failures=failures + run_failures,
        skipped_scenes=[],
        written_now=sum(r["status"] == "written" for r in records),
        resumed=resumed,
    )


# -- the manifest, the splits, dataset.json ---------------------------------------------------------
def _load_records(out: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((out / RECORDS_DIR).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:
            continue  # cannot happen with atomic writes; a hand-damaged record is redone next run
    return records


def _one_or_mixed(values: Iterable[str]) -> str:
    distinct = sorted(set(values))
    return distinct[0] if len(distinct) == 1 else ("mixed" if distinct else "")


def finalise(
    out: Path,
    options: BuildOptions,
    failures: list[tuple[str, str]] | None = None,
    skipped_scenes: list[tuple[str, str]] | None = None,
    written_now: int = 0,
    resumed: int = 0,
) -> BuildReport:
    """Rebuild manifest.csv, failures.csv and dataset.json from the records."""
    records = _load_records(out)
    written = [r for r in records if r["status"] == "written" and (out / r["file"]).is_file()]
    dropped: dict[str, int] = {"missing_pixels": 0, "split_buffer": 0}
    for r in records:
        if r["status"] == "dropped":
            dropped[r["reason"]] = dropped.get(r["reason"], 0) + 1
    splits, keep, blocks = assign_splits(
        [(r["lon"], r["lat"]) for r in written], [r["footprint"] for r in written], options.split
    )
    rows = []
    for r, split, kept, block in zip(written, splits, keep, blocks):
        if not kept:
            dropped["split_buffer"] += 1
            continue
        rows.append({**r, "split": split, "block": block})
    rows.sort(key=lambda r: r["id"])
    failures = sorted(failures or [])
    write_csv_atomic(out / FAILURES_FILE, ("id", "reason"), [{"id": i, "reason": why} for i, why in failures])
    counts: dict[str, Any] = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    counts["dropped"] = dropped
    counts["skipped_scenes"] = len(skipped_scenes or [])
    counts["failed"] = len(failures)
    counts["angle_assumed"] = sum(bool(r.get("angle_assumed")) for r in rows)
    methods = sorted({r.get("landcover_method", "") for r in rows} - {""})
    info = {
        "format": FORMAT,
        "size": options.size,
        "stride": options.effective_stride,
        "bands": list(TRAINING_PATCH_BANDS),
        "calibration": options.calibration.to_dict(),
        "embedding_source": _one_or_mixed(r["embedding_source"] for r in rows) or "alphaearth",
        "s1_mode": _one_or_mixed(r.get("s1_mode", "single") for r in rows) or "single",
        "counts": counts,
        "split": options.split.to_json(),
        "landcover": {
            "requested": options.landcover,
            "methods": methods,
            "classes": "Dynamic World (water, trees, grass, flooded_vegetation, crops, shrub_and_scrub, "
            "built, bare, snow_and_ice)",
        },
        "max_missing": options.max_missing,
        "assumed_angle_deg": options.assume_angle,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sarviz": sarviz.__version__,
    }
    PatchDatasetFolder(out, info, rows).save()  # manifest.csv, then dataset.json
    return BuildReport(out, counts, failures, list(skipped_scenes or []), written_now, resumed)
