"""STAC for batch runs: one Item a batch item, one Catalog a run, validation that works offline.

pystac writes the JSON; two things are added here:

* :class:`AtomicStacIO` — every STAC file is written through :func:`sarviz.atomic.atomic_path`
  (pystac's default I/O opens the target and writes into it, so a crash leaves a truncated
  catalog).
* :class:`OfflineValidator` — pystac ships the STAC *core* schemas but fetches extension
  schemas over the network. The projection extension schema is bundled
  (``sarviz/batch/schemas``); any other remote schema is refused with a clear message
  instead of a network call that would hang on an offline machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.projection import ProjectionExtension
from pystac.stac_io import DefaultStacIO
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from sarviz.atomic import atomic_path
from sarviz.errors import FormatError
from sarviz.formats.base import Artifact, register_artifact

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "batch" / "schemas"
CATALOG_FILE = "catalog.json"
#: bundled extension schemas: URI → file in SCHEMA_DIR
BUNDLED_SCHEMAS = {
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json": "projection-v2.0.0.json",
}
COG_MEDIA_TYPE = pystac.MediaType.COG
PROPERTY_PREFIX = "sarviz:"


class AtomicStacIO(DefaultStacIO):
    """pystac I/O whose writes are atomic (temp file beside the target, then rename)."""

    def write_text_to_href(self, href: str, txt: str) -> None:
        if "://" in href and not href.startswith("file://"):
            raise NotImplementedError("sarviz writes STAC only to the local file system")
        path = Path(href[7:] if href.startswith("file://") else href)
        with atomic_path(path, suffix=".json.part") as tmp:
            tmp.write_text(txt, encoding="utf-8")


class OfflineValidator(JsonSchemaSTACValidator):
    """JSON-schema validation with the core schemas of pystac plus the bundled extension schemas."""

    def __init__(self) -> None:
        super().__init__()
        for uri, name in BUNDLED_SCHEMAS.items():
            self.schema_cache[uri] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise pystac.STACValidationError(
                f"the JSON schema {schema_uri} is not bundled with sarviz, and validation does not go online; "
                f"bundled: {', '.join(sorted(self.schema_cache))}"
            )
        return self.schema_cache[schema_uri]


def use_offline_validation() -> OfflineValidator:
    """Make pystac validate with :class:`OfflineValidator` (process-wide) and return it."""
    import pystac.validation

    validator = OfflineValidator()
    pystac.validation.set_validator(validator)
    return validator


def validate_catalog(path: str | os.PathLike[str]) -> int:
    """Validate a catalog and every item below it, offline; returns the number of objects validated."""
    use_offline_validation()
    catalog = pystac.Catalog.from_file(str(path), stac_io=AtomicStacIO())
    catalog.validate()
    return 1 + catalog.validate_all()


def _datetime(dates: dict[str, Any], fallback: _dt.datetime) -> _dt.datetime:
    """The acquisition time (Sentinel-1, else Sentinel-2) of the scene, else ``fallback``."""
    for key in ("s1", "s2"):
        value = dates.get(key)
        if not value:
            continue
        try:
            when = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)
    return fallback


def build_item(
    item_id: str,
    folder: Path,
    *,
    crs: Any,
    transform: Any,
    width: int,
    height: int,
    bbox_wgs84: tuple[float, float, float, float],
    dates: dict[str, Any],
    assets: dict[str, dict[str, Any]],
    properties: dict[str, Any],
) -> pystac.Item:
    """A STAC Item for a batch item in ``folder`` (its final place; asset files are named relative to it).

    ``assets``: key → {"file", "title", "roles", "bands"?}. ``properties`` are stored with the
    ``sarviz:`` prefix. The projection extension carries the grid of every raster (they share it).
    """
    from shapely.geometry import box, mapping

    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    west, south, east, north = bbox_wgs84
    geometry = mapping(box(west, south, east, north))
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=[west, south, east, north],
        datetime=_datetime(dates, now),
        properties={"created": now.isoformat()},
    )
    item.properties.update({f"{PROPERTY_PREFIX}{k}": v for k, v in properties.items()})
    item.set_self_href(str(folder / f"{item_id}.json"))
    for key, spec in assets.items():
        extra = {"sarviz:bands": list(spec["bands"])} if spec.get("bands") else {}
        item.add_asset(
            key,
            pystac.Asset(
                href=str(folder / spec["file"]),
                media_type=COG_MEDIA_TYPE,
                title=spec.get("title"),
                roles=list(spec.get("roles", ["data"])),
                extra_fields=extra,
            ),
        )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    if epsg:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.code = None
        proj.wkt2 = crs.to_wkt()
    proj.shape = [int(height), int(width)]
    proj.transform = [float(v) for v in list(transform)[:6]]
    left, top = transform @ (0, 0)
    right, bottom = transform @ (width, height)
    proj.bbox = [min(left, right), min(bottom, top), max(left, right), max(bottom, top)]
    return item


def write_item(item: pystac.Item, dest: Path) -> None:
    """Write ``item``'s JSON to ``dest`` with asset hrefs relative to its self href."""
    item.make_asset_hrefs_relative()  # the item folder is self-contained: it can be moved or served as is
    data = item.to_dict(include_self_link=False, transform_hrefs=True)
    # the run's catalog sits two levels up (OUT/catalog.json, items in OUT/items/<id>/): linking it here
    # means writing the catalog never rewrites finished items
    data["links"] = [link for link in data.get("links", []) if link.get("rel") not in ("root", "parent")] + [
        {"rel": rel, "href": f"../../{CATALOG_FILE}", "type": "application/json"} for rel in ("root", "parent")
    ]
    text = json.dumps(data, indent=1, default=str)
    with atomic_path(dest, suffix=".json.part") as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_catalog(root: Path, item_files: list[Path], title: str, description: str) -> Path:
    """(Re)write ``root/catalog.json`` linking every item JSON in ``item_files`` (self-contained, relative links)."""
    io = AtomicStacIO()
    catalog = pystac.Catalog(id=f"sarviz-batch-{root.name}", title=title, description=description)
    catalog.catalog_type = pystac.CatalogType.SELF_CONTAINED
    catalog.set_self_href(str(root / CATALOG_FILE))
    for path in sorted(item_files):
        catalog.add_link(
            pystac.Link(
                pystac.RelType.ITEM, f"./items/{path.parent.name}/{path.name}", media_type=pystac.MediaType.GEOJSON
            )
        )
    # only the catalog is (re)written: the items already link to it (write_item), and a finished item's
    # files are never touched again
    catalog.save_object(include_self_link=False, stac_io=io)
    return root / CATALOG_FILE


@register_artifact
class StacCatalog(Artifact):
    """A batch run's STAC Catalog (``OUT/catalog.json``) linking the items' STAC Items.

    ``save(root, item_files, title, description)`` (re)writes it atomically; ``load(root)``
    reads it with pystac (one-line :class:`FormatError` when missing or not a catalog);
    :func:`validate_catalog` checks it and every item against the (bundled) schemas.
    """

    artifact = "stac-catalog"
    what = "STAC catalog"
    FILES = (CATALOG_FILE,)

    def __init__(self, root: str | os.PathLike[str], catalog: "pystac.Catalog | None" = None) -> None:
        self.root = Path(root)
        self.catalog = catalog

    @property
    def path(self) -> Path:
        return self.root / CATALOG_FILE

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> "StacCatalog":
        path = Path(root) / CATALOG_FILE
        if not path.is_file():
            raise FormatError(f"{path} is missing: not a batch folder with a STAC catalog")
        try:
            catalog = pystac.Catalog.from_file(str(path), stac_io=AtomicStacIO())
        except (OSError, ValueError, KeyError, TypeError, pystac.STACError, pystac.STACTypeError) as exc:
            raise FormatError(f"{path} is not a readable STAC catalog ({exc})") from None
        return cls(root, catalog)

    def save(self, item_files: list[Path], title: str, description: str) -> Path:
        return write_catalog(self.root, item_files, title, description)

    def item_ids(self) -> list[str]:
        return sorted(
            Path(link.href).parent.name
            for link in (self.catalog.get_links(pystac.RelType.ITEM) if self.catalog is not None else [])
        )
