"""Importers: public Sentinel-1/Sentinel-2 datasets → sarviz scene files.

Recognised layouts (found anywhere below the source folder):

* **Sen1Floods11** hand-labelled chips: ``<chip>_S1Hand.tif`` (VV, VH dB) beside
  ``<chip>_S2Hand.tif`` (13-band L1C, DN), with ``<Country>_metadata.geojson`` for dates.
* **BigEarthNet** S1 patch folders (``*_VV.tif``, ``*_VH.tif``,
  ``*_labels_metadata.json`` naming ``corresponding_s2_patch``) and the S2 patch folders
  they point at (``*_B02.tif`` …, one file a band).
* **SSL4EO-S12** ``s1/<location>/<product>/{VV,VH}.tif + metadata.json`` with
  ``s2a|s2c/<location>/<date_tile>/B*.tif``; each S1 acquisition is paired with the S2
  date nearest to it.

S1 and S2 are put on one grid (the S1 grid; S2 is resampled bilinearly when its grid
differs). Scenes are written atomically, so an interrupted import leaves no partial file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from sarviz.embedding_proxy import ProxyUnavailable, add_proxy_embedding, default_points_dir, is_proxy
from sarviz.errors import SarvizError
from sarviz.scene import Scene, SceneError, check_claimed_size, read_scene, write_scene
from sarviz.store import SceneStore

COPERNICUS = "contains modified Copernicus Sentinel data (free and open)"
# Sentinel-2 digital numbers → reflectance factor (processing baselines before 04.00: no offset)
S2_SCALE = 10_000.0


@dataclass
class ImportReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already in the store
    problems: list[str] = field(default_factory=list)  # could not be imported, with the reason
    proxied: list[str] = field(default_factory=list)  # given a proxy embedding (not AlphaEarth)
    notes: list[str] = field(default_factory=list)  # imported, but something the user should know

    def summary(self) -> str:
        return (
            f"{len(self.written)} scenes written ({len(self.proxied)} with a PROXY embedding, not AlphaEarth), "
            f"{len(self.skipped)} already present, {len(self.problems)} problems"
        )


@dataclass
class Candidate:
    """One scene to build: a dataset name, an id and a function that builds the scene."""

    dataset: str
    scene_id: str
    build: Callable[[], Scene]


# -- helpers ---------------------------------------------------------------------------------
def _read_band(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        check_claimed_size(src, path, 1)
        arr = src.read(1, out_dtype="float32")
        nodata = src.nodata
        prof = {"crs": src.crs, "transform": src.transform, "width": src.width, "height": src.height}
    if nodata is not None and not np.isnan(nodata):
        arr[arr == nodata] = np.nan
    return arr, prof


def _to_grid(arr: np.ndarray, src: dict, dst: dict) -> np.ndarray:
    """``arr`` on grid ``src`` resampled onto grid ``dst`` (no-op when they are the same)."""
    same = (
        src["crs"] == dst["crs"]
        and src["width"] == dst["width"]
        and src["height"] == dst["height"]
        and src["transform"].almost_equals(dst["transform"])
    )
    if same:
        return arr
    out = np.full((dst["height"], dst["width"]), np.nan, dtype=np.float32)
    reproject(
        arr,
        out,
        src_transform=src["transform"],
        src_crs=src["crs"],
        dst_transform=dst["transform"],
        dst_crs=dst["crs"],
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    return out


def _optical_from_files(files: dict[str, Path], grid: dict) -> np.ndarray:
    bands = []
    for name in ("B2", "B3", "B4", "B8"):
        arr, prof = _read_band(files[name])
        arr[arr <= 0] = np.nan  # S2 DN 0 is nodata
        bands.append(_to_grid(arr / S2_SCALE, prof, grid))
    return np.stack(bands)


def _iso(value: str) -> str:
    value = value.strip().replace("/", "-")
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y%m%dT%H%M%S"):
        try:
            return dt.datetime.strptime(value, fmt).isoformat()
        except ValueError:
            pass
    return value


# -- Sen1Floods11 ----------------------------------------------------------------------------
def _sen1floods11(root: Path) -> Iterator[Candidate]:
    for s1 in sorted(root.rglob("*_S1Hand.tif")):
        chip = s1.name[: -len("_S1Hand.tif")]
        s2 = s1.with_name(f"{chip}_S2Hand.tif")
        country = chip.split("_")[0]

        def build(s1=s1, s2=s2, chip=chip, country=country) -> Scene:
            with rasterio.open(s1) as src:
                names = [d or "" for d in src.descriptions]
                if src.count < 2:
                    raise SceneError(f"{s1}: expected 2 bands (VV, VH), found {src.count}")
                idx = [names.index(p) + 1 if p in names else i + 1 for i, p in enumerate(("VV", "VH"))]
                check_claimed_size(src, s1, 2)
                vv, vh = src.read(idx, out_dtype="float32")
                grid = {"crs": src.crs, "transform": src.transform, "width": src.width, "height": src.height}
            optical = None
            if s2.exists():
                with rasterio.open(s2) as src:
                    names = [d or "" for d in src.descriptions]
                    if not all(b in names for b in ("B2", "B3", "B4", "B8")):
                        raise SceneError(f"{s2}: band descriptions {names} lack B2, B3, B4, B8")
                    check_claimed_size(src, s2, 4)
                    bands = src.read([names.index(b) + 1 for b in ("B2", "B3", "B4", "B8")], out_dtype="float32")
                    s2grid = {"crs": src.crs, "transform": src.transform, "width": src.width, "height": src.height}
                bands[bands <= 0] = np.nan
                optical = np.stack([_to_grid(b / S2_SCALE, s2grid, grid) for b in bands])
            dates, meta = {}, {}
            geojson = s1.with_name(f"{country}_metadata.geojson")
            if geojson.exists():
                for feat in json.loads(geojson.read_text()).get("features", []):
                    props = feat.get("properties", {})
                    if props.get("location") == country:
                        dates = {"s1": _iso(props["s1_date"]), "s2": _iso(props["s2_date"])}
                        meta = {"orbit_pass": props.get("orbit"), "relative_orbit": props.get("rel_orbit_num")}
            return Scene(
                vv_db=vv,
                vh_db=vh,
                optical=optical,
                scene_id=f"sen1floods11_{chip}",
                dates=dates,
                **grid,
                provenance={
                    "source": "import:sen1floods11",
                    "dataset": "Sen1Floods11 (Bonafilia et al., 2020)",
                    "chip": chip,
                    "files": [s1.name, s2.name if s2.exists() else None],
                    "optical_level": "L1C (TOA reflectance)",
                    "s1_product": "S1 GRD, VV/VH dB (GEE)",
                    "s1_mode": "single",  # each chip is cut from one GRD acquisition (its date above)
                    "licence": f"Sen1Floods11 hand labels and chips; {COPERNICUS}",
                    **meta,
                },
            )

        yield Candidate("sen1floods11", f"sen1floods11_{chip}", build)


# -- BigEarthNet -----------------------------------------------------------------------------
def _bigearthnet(root: Path) -> Iterator[Candidate]:
    s2_dirs = {p.parent.name: p.parent for p in root.rglob("*_B02.tif")}
    for meta_path in sorted(root.rglob("*_labels_metadata.json")):
        folder = meta_path.parent
        name = folder.name
        vv_path, vh_path = folder / f"{name}_VV.tif", folder / f"{name}_VH.tif"
        if not vv_path.exists():
            continue  # an S2 patch folder
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as exc:
            yield Candidate("bigearthnet", f"bigearthnet_{name}", _fail(f"{meta_path}: not valid JSON ({exc})"))
            continue

        def build(meta=meta, name=name, vv_path=vv_path, vh_path=vh_path) -> Scene:
            vv, grid = _read_band(vv_path)
            vh, vh_grid = _read_band(vh_path)
            vh = _to_grid(vh, vh_grid, grid)
            s2_name = meta.get("corresponding_s2_patch")
            optical, dates, s2_meta = None, {"s1": _iso(meta.get("acquisition_time", ""))}, {}
            s2_dir = s2_dirs.get(s2_name or "")
            if s2_dir is not None:
                files = {b: s2_dir / f"{s2_name}_B0{b[1]}.tif" for b in ("B2", "B3", "B4", "B8")}
                optical = _optical_from_files(files, grid)
                s2_meta_path = s2_dir / f"{s2_name}_labels_metadata.json"
                if s2_meta_path.exists():
                    s2_meta = json.loads(s2_meta_path.read_text())
                    dates["s2"] = _iso(s2_meta.get("acquisition_date", ""))
            return Scene(
                vv_db=vv,
                vh_db=vh,
                optical=optical,
                scene_id=f"bigearthnet_{name}",
                dates=dates,
                **grid,
                provenance={
                    "source": "import:bigearthnet",
                    "dataset": "BigEarthNet-S1/S2 (Sumbul et al.)",
                    "s1_patch": name,
                    "s2_patch": s2_name if s2_dir is not None else None,
                    "s1_product": meta.get("scene_source"),
                    "s2_product": s2_meta.get("tile_source"),
                    "s1_mode": "single",  # a patch of one GRD scene (named in s1_product; its date in the id)
                    "labels": meta.get("labels", []),
                    "optical_level": "L2A (surface reflectance)",
                    "licence": f"BigEarthNet CDLA-Permissive-1.0; {COPERNICUS}",
                },
            )

        yield Candidate("bigearthnet", f"bigearthnet_{name}", build)


def _fail(message: str) -> Callable[[], Scene]:
    def build() -> Scene:
        raise SceneError(message)

    return build


# -- SSL4EO-S12 ------------------------------------------------------------------------------
_SSL4EO_S2_DATE = re.compile(r"^(\d{8}T\d{6})_")
_SSL4EO_S1_DATE = re.compile(r"_(\d{8}T\d{6})_")


def _ssl4eo(root: Path) -> Iterator[Candidate]:
    for vv_path in sorted(root.rglob("s1/*/*/VV.tif")):
        product_dir = vv_path.parent
        location = product_dir.parent.name
        dataset_root = product_dir.parent.parent.parent
        # s2a = L2A surface reflectance, s2c = L1C top of atmosphere: prefer L2A on a tie
        s2_options: list[tuple[dt.datetime, int, Path]] = []
        for s2_dir in sorted(dataset_root.glob(f"s2*/{location}/*")):
            m = _SSL4EO_S2_DATE.match(s2_dir.name)
            if m and (s2_dir / "B2.tif").exists():
                rank = 0 if s2_dir.parent.parent.name == "s2a" else 1
                s2_options.append((dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S"), rank, s2_dir))

        def build(vv_path=vv_path, product_dir=product_dir, location=location, s2_options=s2_options) -> Scene:
            vv, grid = _read_band(vv_path)
            vh, vh_grid = _read_band(product_dir / "VH.tif")
            vh = _to_grid(vh, vh_grid, grid)
            meta = (
                json.loads((product_dir / "metadata.json").read_text())
                if (product_dir / "metadata.json").exists()
                else {}
            )
            m = _SSL4EO_S1_DATE.search(product_dir.name)
            s1_time = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S") if m else None
            optical, dates, s2_name, level = None, {}, None, None
            if s1_time is not None:
                dates["s1"] = s1_time.isoformat()
            if s2_options and s1_time is not None:
                s2_time, _, s2_dir = min(s2_options, key=lambda t: (abs(t[0] - s1_time), t[1]))
                level = "L2A (surface reflectance)" if s2_dir.parent.parent.name == "s2a" else "L1C (TOA reflectance)"
                optical = _optical_from_files({b: s2_dir / f"{b}.tif" for b in ("B2", "B3", "B4", "B8")}, grid)
                dates["s2"] = s2_time.isoformat()
                s2_name = s2_dir.name
            return Scene(
                vv_db=vv,
                vh_db=vh,
                optical=optical,
                scene_id=f"ssl4eo_{location}_{product_dir.name}",
                dates=dates,
                **grid,
                provenance={
                    "source": "import:ssl4eo-s12",
                    "dataset": "SSL4EO-S12 (Wang et al., 2023)",
                    "location": location,
                    "s1_product": meta.get("system:index", product_dir.name),
                    "s2_product": s2_name,
                    "s1_mode": "single",  # one GRD product a season (s1_product)
                    "orbit_pass": meta.get("orbitProperties_pass"),
                    "relative_orbit": meta.get("relativeOrbitNumber_start"),
                    "optical_level": level,
                    "licence": f"SSL4EO-S12 CC-BY-4.0; {COPERNICUS}",
                },
            )

        yield Candidate("ssl4eo", f"ssl4eo_{location}_{product_dir.name}", build)


IMPORTERS = {"sen1floods11": _sen1floods11, "bigearthnet": _bigearthnet, "ssl4eo": _ssl4eo}


def find_candidates(src: str | Path) -> list[Candidate]:
    """All importable scenes below ``src`` (a folder)."""
    root = Path(src).expanduser()
    if not root.exists():
        raise SceneError(f"source {root} does not exist")
    if not root.is_dir():
        raise SceneError(f"source {root} is not a folder; point `sarviz import` at a dataset folder")
    out: list[Candidate] = []
    for finder in IMPORTERS.values():
        out.extend(finder(root))
    return out


def import_scenes(
    src: str | Path,
    to: str | Path,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    proxy_embedding: bool = True,
    points_dir: str | Path | None = None,
) -> ImportReport:
    """Import every recognised scene below ``src`` into the scene folder ``to``.

    ``proxy_embedding``: give scenes without an AlphaEarth embedding a proxy one
    (:mod:`sarviz.embedding_proxy`, marked as a proxy) from the AlphaEarth sample points in
    ``points_dir`` (default: ``SARVIZ_PROXY_POINTS``, else ``alphaearth_s1_points`` below
    ``src``, else ``../shared/samples`` beside the checkout). Where no proxy can be made the
    scene is still imported, and the report says why.
    """

    candidates = find_candidates(src)
    if not candidates:
        raise SceneError(
            f"no recognised dataset under {src} (looked for Sen1Floods11 *_S1Hand.tif, BigEarthNet "
            f"*_labels_metadata.json with *_VV.tif, SSL4EO-S12 s1/<location>/<product>/VV.tif)"
        )
    store = SceneStore(to, create=True)
    existing = {e.scene_id: e for e in store}
    report = ImportReport()
    upgrade: list = []
    points: Path | None = None  # the sample points folder, None: no proxy embeddings
    if proxy_embedding:
        points = Path(points_dir).expanduser() if points_dir is not None else default_points_dir(near=src)
        if points is None:
            report.notes.append(
                "no proxy embeddings: the AlphaEarth sample points (alphaearth_s1_points) were "
                "not found; set SARVIZ_PROXY_POINTS or pass --points"
            )
    for i, cand in enumerate(candidates):
        if progress:
            progress(i, len(candidates), cand.scene_id)
        if cand.scene_id in existing and not overwrite:
            report.skipped.append(cand.scene_id)
            if points is not None and "embedding" not in existing[cand.scene_id].layers:
                upgrade.append(existing[cand.scene_id])  # imported earlier without an embedding
            continue
        try:
            scene = cand.build()
            if points is not None and scene.embedding is None:
                try:
                    scene = add_proxy_embedding(scene, points)
                    report.proxied.append(cand.scene_id)
                except ProxyUnavailable as exc:
                    report.notes.append(f"{cand.scene_id}: no proxy embedding ({exc})")
            report.written.append(write_scene(scene, store.folder / f"{cand.scene_id}.tif"))
        except (SarvizError, OSError, ValueError, KeyError, rasterio.errors.RasterioError) as exc:
            report.problems.append(f"{cand.dataset} {cand.scene_id}: {exc}")
    if upgrade and points is not None:  # a re-run of the import brings older imports up to date
        done = ImportReport()
        _upgrade_entries(upgrade, points, False, done)
        report.skipped = [sid for sid in report.skipped if sid not in done.proxied]
        report.written += done.written
        report.proxied += done.proxied
        report.notes += done.notes
        report.problems += done.problems
    if progress:
        progress(len(candidates), len(candidates), "done")
    store.refresh()
    return report


def _upgrade_entries(
    entries: list,
    points: Path,
    force: bool,
    report: ImportReport,
    progress: Callable[[int, int, str], None] | None = None,
) -> None:
    """Rewrite the scene files of ``entries`` with a proxy embedding where they have none."""
    for i, entry in enumerate(entries):
        if progress:
            progress(i, len(entries), entry.scene_id)
        try:
            scene = read_scene(entry.path)
            if scene.embedding is not None and not (force and is_proxy(scene)):
                report.skipped.append(entry.scene_id)
                continue
            report.written.append(write_scene(add_proxy_embedding(scene, points, force=force), entry.path))
            report.proxied.append(entry.scene_id)
        except ProxyUnavailable as exc:
            report.notes.append(f"{entry.scene_id}: no proxy embedding ({exc})")
        except (SarvizError, OSError, ValueError, rasterio.errors.RasterioError) as exc:
            report.problems.append(f"{entry.scene_id}: {exc}")
    if progress:
        progress(len(entries), len(entries), "done")


def add_proxy_embeddings(
    folder: str | Path,
    points_dir: str | Path | None = None,
    force: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> ImportReport:
    """Give every scene file in ``folder`` that lacks an embedding a proxy one, in place.

    Scenes with a real AlphaEarth embedding are never touched; scenes that already hold a
    proxy are skipped unless ``force`` (e.g. after the recipe changed). Files are rewritten
    atomically.
    """
    store = SceneStore(folder)
    points = Path(points_dir).expanduser() if points_dir is not None else default_points_dir()
    if points is None:
        raise SceneError(
            "the AlphaEarth sample points (alphaearth_s1_points) were not found; "
            "set SARVIZ_PROXY_POINTS or pass --points"
        )
    report = ImportReport()
    _upgrade_entries(list(store), points, force, report, progress)
    store.refresh()
    return report
