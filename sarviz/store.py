"""Local scene store: a folder of scene files indexed by footprint.

The index keeps each file's footprint in WGS84 (split in two at the antimeridian) in a
shapely STRtree, and caches the footprints in ``.sarviz-index.json`` keyed by file size
and mtime, so that opening a large folder reads only the headers of new or changed files.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from rasterio.windows import Window
from shapely import STRtree, box
from shapely.geometry import Point

from sarviz.atomic import atomic_path
from sarviz.scene import (
    Scene,
    SceneError,
    footprint_wgs84,
    patch_grid,
    read_scene,
    read_scene_meta,
    validate_latlon,
    write_scene,
)

INDEX_FILE = ".sarviz-index.json"
INDEX_VERSION = 1


class NoSceneHere(SceneError):
    """No scene in the store covers the point."""


@dataclass(frozen=True)
class SceneEntry:
    """One scene file in the store, as the index knows it."""

    path: Path
    scene_id: str
    west: float
    south: float
    east: float
    north: float
    width: int
    height: int
    crs: str
    layers: tuple[str, ...]
    dates: dict

    @property
    def center_latlon(self) -> tuple[float, float]:
        east = self.east if self.east >= self.west else self.east + 360.0
        lon = (self.west + east) / 2.0
        lon = lon - 360.0 if lon > 180.0 else lon
        return ((self.south + self.north) / 2.0, lon)

    def boxes(self) -> list:
        """The footprint as 1 or 2 lon/lat boxes (2 when it crosses the antimeridian)."""
        if self.east >= self.west:
            return [box(self.west, self.south, self.east, self.north)]
        return [box(self.west, self.south, 180.0, self.north), box(-180.0, self.south, self.east, self.north)]

    def to_json(self) -> dict:
        d = self.__dict__.copy()
        d["path"] = str(self.path)
        d["layers"] = list(self.layers)
        return d


@dataclass(frozen=True)
class _Snapshot:
    entries: tuple[SceneEntry, ...]
    problems: tuple[str, ...]
    tree: STRtree | None
    owner: tuple[int, ...]
    state: tuple | None


#: temporary files of :func:`sarviz.atomic.atomic_path` older than this are leftovers of killed runs
STALE_PART_SECONDS = 6 * 3600


def remove_stale_parts(folder: Path) -> int:
    """Quietly delete leftover ``.NAME.*.part`` files of killed writes (never read as scenes)."""
    import time

    removed = 0
    try:
        for p in folder.glob(".*.part"):
            try:
                if time.time() - p.stat().st_mtime > STALE_PART_SECONDS:
                    p.unlink()
                    removed += 1
            except OSError:
                continue  # read-only folder, or another process just finished it: leave it
    except OSError:
        pass
    return removed


class SceneStore:
    """A folder of scene files. ``lookup(lat, lon, size_px)`` returns the patch at a point."""

    def __init__(
        self, folder: str | os.PathLike, create: bool = False, allowed: Callable[[Path], bool] | None = None
    ) -> None:
        """``allowed`` decides which scene files may be listed and read (the app passes its
        access check, so a ``.tif`` linking out of the roots is never indexed or served)."""
        self.folder = Path(os.path.expanduser(str(folder)))
        self._allowed = allowed
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)
        if not self.folder.exists():
            raise SceneError(
                f"scene folder {self.folder} does not exist; import scenes with "
                f"`sarviz import SRC --out {self.folder}` or set SARVIZ_SCENES"
            )
        if not self.folder.is_dir():
            raise SceneError(f"scene folder {self.folder} is not a folder")
        if not os.access(self.folder, os.R_OK | os.X_OK):
            raise SceneError(f"scene folder {self.folder} is not readable (permissions)")
        self._lock = threading.Lock()
        self._snapshot = _Snapshot((), (), None, (), None)
        self.refresh()

    # -- index ----------------------------------------------------------------------------
    # The store is shared by every Streamlit session, so the index is one immutable snapshot
    # (entries, problems, tree, tree owners) swapped in a single assignment: a lookup running
    # during a refresh sees either the old or the new index, never a mix of both.
    @property
    def entries(self) -> tuple[SceneEntry, ...]:
        return self._snapshot.entries

    @property
    def problems(self) -> tuple[str, ...]:
        """Files that could not be indexed, with the reason."""
        return self._snapshot.problems

    def _folder_state(self) -> tuple:
        try:
            files = [p for p in self.folder.glob("*.tif") if self._allowed is None or self._allowed(p)]
            return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
        except OSError:
            return ()

    def refresh_if_changed(self) -> bool:
        """Refresh when files were added, removed or changed; cheap otherwise (a stat a file)."""
        if self._folder_state() == self._snapshot.state:
            return False
        self.refresh()
        return True

    def refresh(self) -> None:
        with self._lock:
            remove_stale_parts(self.folder)
            state = self._folder_state()
            cached = self._load_index()
            entries, problems, fresh = [], [], {}
            for name, size, mtime in state:
                path = self.folder / name
                key = f"{name}:{size}:{mtime}"
                record = cached.get(key)
                if record is None:
                    try:
                        record = self._index_file(path)
                    except SceneError as exc:
                        problems.append(str(exc))
                        continue
                fresh[key] = record
                entries.append(SceneEntry(**{**record, "path": path, "layers": tuple(record["layers"])}))
            if fresh != cached:
                self._save_index(fresh)
            geoms, owner = [], []
            for i, entry in enumerate(entries):
                for g in entry.boxes():
                    geoms.append(g)
                    owner.append(i)
            self._snapshot = _Snapshot(
                tuple(entries), tuple(problems), STRtree(geoms) if geoms else None, tuple(owner), state
            )

    def _index_file(self, path: Path) -> dict:
        meta = read_scene_meta(path)
        west, south, east, north = footprint_wgs84(meta["crs"], meta["transform"], meta["width"], meta["height"])
        layers = meta["layers"]
        if layers is None:  # files written by other tools: look at the pixels once
            layers = tuple(read_scene(path).layers_present())
        return {
            "scene_id": meta["tags"].get("SCENE_ID", path.stem),
            "west": west,
            "south": south,
            "east": east,
            "north": north,
            "width": meta["width"],
            "height": meta["height"],
            "crs": meta["crs"].to_string(),
            "layers": list(layers),
            "dates": meta["dates"],
        }

    def _load_index(self) -> dict:
        try:
            data = json.loads((self.folder / INDEX_FILE).read_text())
            return data["files"] if data.get("version") == INDEX_VERSION else {}
        except (OSError, ValueError, KeyError):
            return {}

    def _save_index(self, files: dict) -> None:
        if not os.access(self.folder, os.W_OK):
            return  # a read-only store still works; it just re-reads headers next time
        try:
            with atomic_path(self.folder / INDEX_FILE) as tmp:
                tmp.write_text(json.dumps({"version": INDEX_VERSION, "files": files}))
        except OSError:
            pass  # the index is a cache: a store on a full disk still works

    # -- queries --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[SceneEntry]:
        return iter(self.entries)

    def entry(self, scene_id: str) -> SceneEntry:
        for e in self.entries:
            if e.scene_id == scene_id:
                return e
        raise SceneError(f"no scene with id {scene_id!r} in {self.folder}")

    def find(self, lat: float, lon: float) -> list[SceneEntry]:
        """Entries whose footprint contains the point, best first: most layers, then newest."""
        lat, lon = validate_latlon(lat, lon)
        snap = self._snapshot
        if snap.tree is None:
            return []
        hits = {snap.owner[i] for i in snap.tree.query(Point(lon, lat), predicate="intersects")}
        found = [snap.entries[i] for i in sorted(hits)]
        return sorted(found, key=lambda e: (-len(e.layers), -_acquired(e)))

    def nearest(self, lat: float, lon: float, k: int = 3) -> list[tuple[SceneEntry, float]]:
        """The k scenes nearest to a point, with great-circle distance in km."""
        lat, lon = validate_latlon(lat, lon)
        out = []
        for e in self.entries:
            clat, clon = e.center_latlon
            out.append((e, _haversine_km(lat, lon, clat, clon)))
        return sorted(out, key=lambda t: t[1])[:k]

    def read(self, scene_id: str) -> Scene:
        return read_scene(self.entry(scene_id).path)

    def lookup(
        self, lat: float, lon: float, size_px: int = 512, grid: str = "native", scene_id: str | None = None
    ) -> Scene:
        """The ``size_px`` × ``size_px`` patch centred on the point.

        ``grid="native"`` crops the scene on its own grid (the window is shifted to stay
        inside the scene, and is the whole scene when the scene is smaller);
        ``grid="utm"`` reprojects onto the standard patch grid (local UTM, 10 m).
        ``scene_id`` picks one of the scenes covering the point (e.g. one acquisition date
        where a footprint has several); by default the best of :meth:`find`.
        """
        lat, lon = validate_latlon(lat, lon)
        if not isinstance(size_px, (int, np.integer)) or not 16 <= size_px <= 4096:
            raise SceneError(f"patch size must be a whole number of pixels in [16, 4096], got {size_px!r}")
        hits = self.find(lat, lon)
        if not hits:
            raise NoSceneHere(self.describe_miss(lat, lon))
        if scene_id is not None:
            hits = [e for e in hits if e.scene_id == scene_id]
            if not hits:
                raise NoSceneHere(f"scene {scene_id!r} does not cover ({lat:.4f}, {lon:.4f})")
        failures = []
        for entry in hits:  # a file that broke since it was indexed: say so, try the next scene
            try:
                return self._read_patch(entry, lat, lon, size_px, grid)
            except SceneError as exc:
                failures.append(str(exc))
        raise SceneError("every scene covering this point failed to read: " + "; ".join(failures))

    def _read_patch(self, entry: SceneEntry, lat: float, lon: float, size_px: int, grid: str) -> Scene:
        if grid == "utm":
            crs, transform = patch_grid(lat, lon, size_px)
            return read_scene(entry.path).reproject(crs, transform, size_px, size_px)
        if grid != "native":
            raise SceneError(f"unknown grid {grid!r}; use 'native' or 'utm'")
        meta = read_scene_meta(entry.path)
        from pyproj import Transformer

        x, y = Transformer.from_crs("EPSG:4326", meta["crs"], always_xy=True).transform(lon, lat)
        col, row = ~meta["transform"] @ (x, y)
        w, h = min(size_px, meta["width"]), min(size_px, meta["height"])
        c0 = int(np.clip(math.floor(col - w / 2), 0, meta["width"] - w))
        r0 = int(np.clip(math.floor(row - h / 2), 0, meta["height"] - h))
        scene = read_scene(entry.path, window=Window(c0, r0, w, h))
        scene.scene_id = entry.scene_id
        return scene

    def describe_miss(self, lat: float, lon: float) -> str:
        if not self.entries:
            return (
                f"no scene covers ({lat:.4f}, {lon:.4f}): the scene folder {self.folder} is empty; "
                f"import scenes with `sarviz import SRC --out {self.folder}`"
            )
        near = ", ".join(
            f"{e.scene_id} at ({e.center_latlon[0]:.3f}, {e.center_latlon[1]:.3f}), {d:,.0f} km away"
            for e, d in self.nearest(lat, lon)
        )
        return f"no scene covers ({lat:.4f}, {lon:.4f}); {len(self.entries)} scenes available, nearest: {near}"

    def add(self, scene: Scene, name: str | None = None, overwrite: bool = False) -> Path:
        """Write a scene into the store (atomically) and index it."""
        name = _safe_name(name or scene.scene_id or "scene")
        path = self.folder / f"{name}.tif"
        if path.exists() and not overwrite:
            raise SceneError(f"{path} exists already (use overwrite to replace it)")
        write_scene(scene, path)
        self.refresh()
        return path


def _acquired(entry: SceneEntry) -> float:
    """The acquisition time of a scene (S1, else S2) as a timestamp; 0 when unknown."""
    import datetime as dt

    for key in ("s1", "s2"):
        try:
            return dt.datetime.fromisoformat(entry.dates[key]).timestamp()
        except (KeyError, TypeError, ValueError):
            continue
    return 0.0


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep[:120] or "scene"


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))
