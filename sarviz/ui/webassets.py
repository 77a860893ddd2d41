"""Local copies of the map's web assets, so the map works without the internet.

folium pages load Leaflet, jQuery and Bootstrap from CDNs; a browser without the internet
then gets no map at all. ``./dev`` fetches the npm packages below into ``.cache/webassets``
(``npm pack``: the registry, not a CDN) and :func:`install` copies the files the map needs
to ``static/vendor/``, which Streamlit serves at ``/app/static/vendor/``
(``server.enableStaticServing`` in ``.streamlit/config.toml``). :func:`localize` then points
a folium map at those copies and drops the CDN extras the map does not use (icon fonts,
awesome-markers). Without the local copies the map keeps folium's CDN links (online).

The offline base layer is Natural Earth 1:50m (country polygons and borders) from the
``world-atlas`` package, drawn in the browser by ``topojson-client``.

Run ``python -m sarviz.ui.webassets`` to (re)install the copies.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

from sarviz.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / ".cache" / "webassets"
STATIC_DIR = ROOT / "static" / "vendor"
URL_PREFIX = "/app/static/vendor"
#: npm package → (version, files under package/ that the app serves)
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "leaflet": (
        "1.9.3",
        (
            "dist/leaflet.js",
            "dist/leaflet.css",
            "dist/images/layers.png",
            "dist/images/layers-2x.png",
            "dist/images/marker-icon.png",
            "dist/images/marker-icon-2x.png",
            "dist/images/marker-shadow.png",
        ),
    ),
    "jquery": ("3.7.1", ("dist/jquery.min.js",)),
    "bootstrap": ("5.2.2", ("dist/js/bootstrap.bundle.min.js", "dist/css/bootstrap.min.css")),
    "topojson-client": ("3.1.0", ("dist/topojson-client.min.js",)),
    "world-atlas": ("2.0.2", ("countries-50m.json",)),
}
BASEMAP_FILE = ("world-atlas", "countries-50m.json")
TOPOJSON_JS = ("topojson-client", "dist/topojson-client.min.js")
_NPM_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/(?P<pkg>[^@/]+)@[^/]+/(?P<path>.+)$")
_OTHER_CDN = {"https://code.jquery.com/jquery-3.7.1.min.js": ("jquery", "dist/jquery.min.js")}


def npm_specs() -> list[str]:
    """``name@version`` of every package, for ``npm pack`` in ./dev."""
    return [f"{name}@{version}" for name, (version, _) in PACKAGES.items()]


def install(cache_dir: Path = CACHE_DIR, static_dir: Path = STATIC_DIR) -> list[str]:
    """Copy the served files from the npm packages in ``cache_dir`` to ``static_dir``.

    Returns the packages that are missing from the cache (their files are not served).
    Each file is written atomically; an unchanged file is not rewritten.
    """
    missing = []
    for name, (_, files) in PACKAGES.items():
        src_root = cache_dir / name / "package"
        if not all((src_root / f).is_file() for f in files):
            missing.append(name)
            continue
        for f in files:
            src, dst = src_root / f, static_dir / name / f
            if dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dst, suffix=".part") as tmp:
                shutil.copyfile(src, tmp)
    return missing


def local_url(package: str, path: str, static_dir: Path = STATIC_DIR) -> str | None:
    """The app URL of a served file, or None when it is not installed."""
    return f"{URL_PREFIX}/{package}/{path}" if (static_dir / package / path).is_file() else None


def available(static_dir: Path = STATIC_DIR) -> bool:
    """Whether Leaflet itself is served locally (then the map needs no CDN)."""
    return local_url("leaflet", "dist/leaflet.js", static_dir) is not None


def _local_for(url: str, static_dir: Path) -> str | None:
    if url.startswith(URL_PREFIX + "/"):
        return url  # already a local copy
    m = _NPM_CDN.match(url)
    if m:
        return local_url(m.group("pkg"), m.group("path"), static_dir)
    if url in _OTHER_CDN:
        return local_url(*_OTHER_CDN[url], static_dir=static_dir)
    return None


def _elements(fig: Any) -> Iterator[Any]:
    yield fig
    for child in getattr(fig, "_children", {}).values():
        yield from _elements(child)


def localize(fmap: Any, static_dir: Path = STATIC_DIR) -> bool:
    """Point every JS/CSS link of a folium map at the local copies; True if it did.

    Links without a local copy (Font Awesome, awesome-markers, glyphicons) are dropped: the
    sarviz map draws circles, GeoJSON and tooltips only, and a dead CDN link would delay the
    map's first paint until the request times out.
    """
    if not available(static_dir):
        return False
    for elem in _elements(fmap):
        for attr in ("default_js", "default_css"):
            links = getattr(elem, attr, None)
            if not links:
                continue
            local = [(name, _local_for(url, static_dir)) for name, url in links]
            setattr(elem, attr, [(name, url) for name, url in local if url is not None])
    return True


def main(argv: list[str] | None = None) -> int:
    missing = install()
    if missing:
        print(
            f"web assets missing from {CACHE_DIR}: {', '.join(missing)} (fetch them with npm pack "
            f"{' '.join(s for s in npm_specs() if s.split('@')[0] in missing)}); the map falls back to the CDNs",
            file=sys.stderr,
        )
        return 1
    print(f"web assets served from {STATIC_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
