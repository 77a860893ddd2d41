"""The source chain: local store → Earth Engine (if configured) → public mosaics, then cache.

``SourceChain.from_settings(Settings.load()).get_scene(lat, lon)`` is what the app calls
on a click outside the local scenes. Each source is asked only for the layers still
missing; whatever was fetched remotely is written into the local store as one scene file
(atomic write, full provenance), so the next visit is served locally and offline.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sarviz.scene import LAYERS, Scene, SceneError
from sarviz.settings import secret
from sarviz.sources.base import (
    DEFAULT_S1_MODE,
    LAYER_GROUPS,
    S1_PROVENANCE_KEYS,
    FetchProgress,
    FetchRequest,
    LayerReport,
    NoDataHere,
    Source,
    SourceError,
    describe_seconds,
    layer_label,
    scale_progress,
)
from sarviz.store import SceneStore

SOURCE_NAMES = ("local", "ee", "public")
_GROUP_OF = {layer: group for group, layers in LAYER_GROUPS.items() for layer in layers}


@dataclass
class FetchResult:
    """A fetched scene and the report the app shows: who served which layer, how long, what's missing."""

    scene: Scene
    request: FetchRequest
    reports: dict[str, LayerReport]
    missing: dict[str, str] = field(default_factory=dict)  # layer → why it is missing (reasons joined by "; ")
    missing_reasons: dict[str, list[str]] = field(default_factory=dict)  # layer → one reason a source/service
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    source_seconds: dict[str, float] = field(default_factory=dict)
    cached_path: Path | None = None

    @property
    def served_by(self) -> dict[str, str]:
        return {layer: r.source for layer, r in self.reports.items()}

    @property
    def from_cache(self) -> bool:
        return bool(self.reports) and all(r.source == "local" for r in self.reports.values())

    @property
    def complete(self) -> bool:
        return not self.missing

    def summary_lines(self) -> list[str]:
        """Short lines for the UI / CLI: timing, one line a layer, then missing layers and warnings."""
        sources = ", ".join(f"{name} {describe_seconds(s)}" for name, s in self.source_seconds.items())
        lines = [
            f"Scene for {self.request.describe()} in {describe_seconds(self.seconds)}"
            + (f" ({sources})" if sources else "")
        ]
        for layer in LAYERS:
            if layer in self.reports:
                lines.append(self.reports[layer].line())
        for layer, why in self.missing.items():
            reasons = self.missing_reasons.get(layer) or [why]
            if len(reasons) == 1:
                lines.append(f"MISSING {layer_label(layer)}: {reasons[0]}")
            else:  # one line a source/service: the full reasons stay readable
                lines.append(f"MISSING {layer_label(layer)}:")
                lines.extend(f"  - {r}" for r in reasons)
        lines.extend(f"note: {w}" for w in self.warnings)
        if self.cached_path is not None:
            lines.append(f"cached as {self.cached_path}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "seconds": self.seconds,
            "source_seconds": self.source_seconds,
            "layers": {k: v.to_json() for k, v in self.reports.items()},
            "missing": self.missing,
            "warnings": self.warnings,
            "cached_path": str(self.cached_path) if self.cached_path else None,
        }


def no_data_message(request: FetchRequest, reasons: dict[str, list[str]]) -> str:
    """Why no source had any layer: a heading, then one line a layer group and source.

    Every reason is kept whole (it names the service and what to do); the line breaks keep
    a message about three layers from three sources readable in a terminal and in the app.
    """
    lines = [f"no source has any layer at {request.describe()}:"]
    for group, why in reasons.items():
        lines.append(f"  {layer_label(group)}:")
        lines.extend(f"    - {r}" for r in (why or ["no source in the chain provides it"]))
    return "\n".join(lines)


def cache_name(request: FetchRequest) -> str:
    pass_ = f"_{request.s1_pass[:3]}" if request.s1_pass else ""
    mode = "_composite" if request.s1_mode == "composite" else ""  # single and composite never overwrite each other
    return f"fetch_{request.lat:+.5f}_{request.lon:+.5f}_{request.year}_{request.size_px}px{pass_}{mode}"


def s1_record(reports: dict[str, LayerReport]) -> dict[str, Any]:
    """The Sentinel-1 keys (:data:`~sarviz.sources.base.S1_PROVENANCE_KEYS`) of the source that
    served VV/VH, for the top level of the scene provenance; empty when there is no S1."""
    report = reports.get("vv_db") or reports.get("vh_db")
    if report is None:
        return {}
    return {k: report.detail[k] for k in S1_PROVENANCE_KEYS if k in report.detail}


class SourceChain:
    """Sources tried in order for the layers still missing; fetched scenes are cached."""

    def __init__(
        self,
        sources: Sequence[Source],
        cache_folder: str | Path | None = None,
        skipped: dict[str, str] | None = None,
        s1_mode: str = DEFAULT_S1_MODE,
    ) -> None:
        self.sources = list(sources)
        self.s1_mode = s1_mode  # what get_scene fetches unless told otherwise (settings `s1_mode`)
        self.cache_folder = Path(cache_folder) if cache_folder is not None else None
        self.skipped = dict(skipped or {})  # source name → why it is not in the chain

    @classmethod
    def from_settings(cls, settings, order: Sequence[str] | None = None, **public_options: Any) -> "SourceChain":
        """Build the chain from :class:`sarviz.settings.Settings` (order: ``settings.sources``).

        Earth Engine joins only when a Cloud project id is set (settings or secrets).
        ``public_options`` go to :class:`~sarviz.sources.public.PublicSource` (e.g. local
        mirrors: ``aef_url=``, ``stac_url=``).
        """
        order = tuple(order or settings.sources)
        unknown = [s for s in order if s not in SOURCE_NAMES]
        if unknown:
            raise SourceError(f"unknown scene source(s) {unknown} in the settings; choose from {list(SOURCE_NAMES)}")
        sources: list[Source] = []
        skipped: dict[str, str] = {}
        for name in order:
            if name == "local":
                from sarviz.sources.local import LocalSource

                sources.append(LocalSource(settings.scenes, create=True))
            elif name == "ee":
                project = settings.ee_project or secret("ee_project")
                if not project:
                    skipped["earthengine"] = "not configured (set SARVIZ_EE_PROJECT to use Earth Engine)"
                    continue
                from sarviz.sources.earthengine import EarthEngineSource

                sources.append(
                    EarthEngineSource(
                        project,
                        key_file=settings.ee_key_file or secret("ee_key_file"),
                        timeout=settings.network_timeout,
                    )
                )
            else:
                from sarviz.sources.public import PublicSource

                mirrors = {
                    k: v for k, v in (("aef_url", settings.public_aef_url), ("stac_url", settings.public_stac_url)) if v
                }
                sources.append(PublicSource(timeout=settings.network_timeout, **{**mirrors, **public_options}))
        return cls(
            sources,
            cache_folder=settings.scenes,
            skipped=skipped,
            s1_mode=getattr(settings, "s1_mode", DEFAULT_S1_MODE) or DEFAULT_S1_MODE,
        )

    def get_scene(
        self,
        lat: float,
        lon: float,
        size_px: int = 512,
        year: int | None = None,
        progress: FetchProgress | None = None,
        **options: Any,
    ) -> FetchResult:
        """The scene at a point: every layer any source has, with a report; cached locally.

        ``options`` are the other :meth:`FetchRequest.make` arguments (``start``, ``end``,
        ``s1_pass``, ``s1_mode`` (default: the chain's), ``target_date``, ``s2_max_cloud``).
        Raises :class:`NoDataHere` (with every source's reason) when no source has any layer.
        """
        if options.get("s1_mode") is None and options.get("s1_composite") is None:
            options["s1_mode"] = self.s1_mode
        request = FetchRequest.make(lat, lon, size_px=size_px, year=year, **options)
        started = time.perf_counter()
        report = scale_progress(progress, 0.0, 0.95)
        layers: dict = {}
        reports: dict[str, LayerReport] = {}
        reasons: dict[str, list[str]] = {g: [] for g in LAYER_GROUPS}
        warnings: list[str] = []
        dates: dict[str, str] = {}
        source_seconds: dict[str, float] = {}
        tried: list[str] = []
        if request.crosses_antimeridian:
            warnings.append("the patch crosses the antimeridian (180°); it is on the local UTM grid as usual")
        n = max(1, len(self.sources))
        for k, source in enumerate(self.sources):
            todo = [g for g in LAYER_GROUPS if not any(layer in layers for layer in LAYER_GROUPS[g])]
            if not todo:
                break
            sub = scale_progress(report, k / n, (k + 1) / n)
            sub(0.0, f"asking {source.name} for {', '.join(todo)}")
            t0 = time.perf_counter()
            tried.append(source.name)
            try:
                result = source.fetch(request, todo, sub)
            except SourceError as exc:  # the whole source is unusable: say why, go on
                source_seconds[source.name] = time.perf_counter() - t0
                for g in todo:
                    reasons[g].append(f"{source.name}: {exc}")
                if source.name != "local":
                    warnings.append(f"{source.name} skipped: {exc}")
                continue
            source_seconds[source.name] = time.perf_counter() - t0
            for layer, arr in result.layers.items():
                if layer not in layers and _GROUP_OF[layer] in todo:
                    layers[layer] = arr
                    reports[layer] = result.reports[layer]
            for group, error in result.failures.items():
                reasons[group].append(f"{source.name}: {error}")
            dates.update({g: d for g, d in result.dates.items() if g in todo and g not in dates})
            warnings.extend(result.warnings)
        for name, why in self.skipped.items():
            for g in reasons:
                reasons[g].append(f"{name}: {why}")
        missing: dict[str, str] = {}
        missing_reasons: dict[str, list[str]] = {}
        for layer in LAYERS:
            if layer not in layers:
                layer_reasons = reasons[_GROUP_OF[layer]]
                if layer == "angle_deg" and "vv_db" in layers:
                    layer_reasons = ["the Sentinel-1 source gave no angle; the generator will use the angle you set"]
                missing_reasons[layer] = list(layer_reasons) or ["no source in the chain provides it"]
                missing[layer] = "; ".join(missing_reasons[layer])
        if not layers:
            raise NoDataHere(no_data_message(request, reasons))
        crs, transform = request.grid
        dates["year"] = str(request.year)
        if request.s1_pass:
            dates["s1_pass"] = request.s1_pass
        scene = Scene(
            crs=crs,
            transform=transform,
            width=request.size_px,
            height=request.size_px,
            **layers,
            scene_id=cache_name(request),
            dates=dates,
            provenance={
                "source": "sarviz fetch",
                "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "request": request.to_json(),
                "sources_tried": tried,
                "layers": {layer: r.to_json() for layer, r in reports.items()},
                "missing": missing,
                "warnings": warnings,
                **s1_record(reports),
            },
        )
        # a layer that came back all-NaN is dropped by Scene; keep the report honest
        for layer in LAYERS:
            if getattr(scene, layer) is None and layer in reports:
                reports.pop(layer)
                missing[layer] = "the source returned no valid pixels"
                missing_reasons[layer] = [missing[layer]]
        cached_path = None
        if self.cache_folder is not None and any(r.source != "local" for r in reports.values()):
            report(1.0, "writing the scene into the local store")
            cached_path = self._cache(self.cache_folder, scene, warnings)
        seconds = time.perf_counter() - started
        if progress:
            progress(1.0, f"done in {describe_seconds(seconds)}")
        return FetchResult(
            scene=scene,
            request=request,
            reports=reports,
            missing=missing,
            warnings=warnings,
            seconds=seconds,
            source_seconds=source_seconds,
            cached_path=cached_path,
            missing_reasons=missing_reasons,
        )

    @staticmethod
    def _cache(folder: Path, scene: Scene, warnings: list[str]) -> Path | None:
        try:
            store = SceneStore(folder, create=True)
            return store.add(scene, name=scene.scene_id, overwrite=True)  # write_scene: temp file + rename
        except (OSError, SceneError) as exc:
            warnings.append(f"the scene could not be cached in {folder}: {exc}")
            return None
