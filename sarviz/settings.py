"""Settings: environment variables over ``sarviz.toml`` over defaults.

Every setting has an environment variable (``SARVIZ_<NAME>``), so the app, the CLI and
CI can be configured the same way. Secrets (Earth Engine keys, the study owner password)
can also come from Streamlit's ``.streamlit/secrets.toml`` through
:func:`secret`; they are never written to settings files.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sarviz.errors import ConfigError

HOME = Path(os.environ.get("SARVIZ_HOME", Path.home() / ".sarviz"))


def sarviz_home() -> Path:
    """SARVIZ_HOME read now (not at import: tests and ``sarviz models add`` change it), else ~/.sarviz."""
    return Path(os.environ.get("SARVIZ_HOME") or Path.home() / ".sarviz").expanduser()


MODES = ("workbench", "study")


def _as_list(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    return tuple(str(s).strip() for s in items if str(s).strip())


def expand_sqlite_home(url: str) -> str:
    """``sqlite:///~/x.sqlite`` → the same URL with ``~`` expanded (the README's default as a URL)."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix + "~"):
            return prefix + os.path.expanduser(url[len(prefix):])
    return url


@dataclass
class Settings:
    #: folder of scene files the app reads (and where fetched scenes are cached)
    scenes: Path = field(default_factory=lambda: HOME / "scenes")
    #: order of scene sources tried for a click: local, ee, public
    sources: tuple[str, ...] = ("local", "ee", "public")
    #: Earth Engine Cloud project id (EE is used only when this is set)
    ee_project: str = ""
    #: Earth Engine service-account key file (else the user's stored credentials)
    ee_key_file: str = ""
    #: SQLAlchemy URL of the human-evaluation study database
    study_db: str = field(default_factory=lambda: f"sqlite:///{HOME / 'study.sqlite'}")
    #: preferred compute device for diffusion ("auto", "cpu", "cuda", "mps")
    device: str = "auto"
    #: network timeout for remote sources, seconds
    network_timeout: float = 20.0
    #: the AlphaEarth Zarr mosaic the public source reads ("" = the published one); a local
    #: mirror path or another URL works too
    public_aef_url: str = ""
    #: the STAC API for Sentinel-1/-2 of the public source ("" = the Planetary Computer)
    public_stac_url: str = ""
    #: real Sentinel-1 fetched for a click: "single" acquisition (nearest date, one orbit, its own
    #: angle — what speckle-sensitive comparisons need) or "composite" (median of one track)
    s1_mode: str = "single"
    #: "workbench" (the default: one user on their own machine) or "study" (a server that
    #: strangers reach: every page but the quiz asks for the study owner's login)
    mode: str = "workbench"
    #: where an owner's server-side study imports are read from (Study admin "Import a folder")
    pool_dir: Path = field(default_factory=lambda: HOME / "pool")
    #: where the app may keep uploaded files
    upload_dir: Path = field(default_factory=lambda: HOME / "uploads")
    #: batch run folders the Batch page opens (`sarviz batch --out` anywhere under it)
    batches: Path = field(default_factory=lambda: HOME / "batches")
    #: built and captioned datasets (`sarviz dataset build --to` under it) the Prompt page and
    #: training pages list
    datasets: Path = field(default_factory=lambda: HOME / "datasets")
    #: training runs (`sarviz train … --out` under it) the Training runs page lists
    runs: Path = field(default_factory=lambda: HOME / "runs")
    #: further folders a browser may open (scene folders, GeoTIFFs to inspect), comma-separated;
    #: the scene folder, the pool folder and the upload folder are always allowed
    roots: tuple[Path, ...] = ()
    #: addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For header is believed;
    #: empty = believe no forwarded header (clients are told apart by their own address)
    trusted_proxies: tuple[str, ...] = ()
    #: megabytes of uploaded files one browser session may hold on the server (all files together;
    #: Streamlit's ``server.maxUploadSize`` caps each file); in study mode only the owner uploads
    upload_session_mb: float = 256.0

    @classmethod
    def load(cls, config_file: Path | None = None) -> "Settings":
        values: dict[str, Any] = {}
        config_file = config_file or Path(os.environ.get("SARVIZ_CONFIG", HOME / "sarviz.toml"))
        if config_file.is_file():
            with config_file.open("rb") as fh:
                try:
                    values.update(tomllib.load(fh))
                except tomllib.TOMLDecodeError as exc:
                    raise ConfigError(f"{config_file} is not valid TOML ({exc})") from None
        for f in fields(cls):
            env = os.environ.get(f"SARVIZ_{f.name.upper()}")
            if env is not None:
                values[f.name] = env
        # An empty value means unset (the default), never "": an empty folder setting would
        # otherwise become Path("") = the working directory, and with it an allowed root.
        values = {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        out = cls()
        for f in fields(cls):
            if f.name not in values:
                continue
            raw = values[f.name]
            if f.name in ("scenes", "pool_dir", "upload_dir", "batches", "datasets", "runs"):
                raw = Path(os.path.expanduser(str(raw)))
            elif f.name in ("sources", "trusted_proxies"):
                raw = _as_list(raw)
            elif f.name == "roots":
                raw = tuple(Path(os.path.expanduser(r)) for r in _as_list(raw))
            elif f.name == "mode":
                raw = str(raw).strip().lower()
                if raw not in MODES:
                    raise ConfigError(f"SARVIZ_MODE must be one of {', '.join(MODES)}, got {raw!r}")
            elif f.name == "study_db":
                raw = expand_sqlite_home(str(raw))
            elif f.name in ("network_timeout", "upload_session_mb"):
                try:
                    raw = float(raw)
                except (TypeError, ValueError):
                    raise ConfigError(f"SARVIZ_{f.name.upper()} must be a number, got {raw!r}") from None
            setattr(out, f.name, raw)
        return out

    @property
    def study_mode(self) -> bool:
        return self.mode == "study"

    def read_roots(self) -> tuple[Path, ...]:
        """Folders a browser may open: the scene folder, pool, uploads, batches, datasets and ``roots``."""
        return (self.scenes, self.pool_dir, self.upload_dir, self.batches, self.datasets, self.runs,
                *self.roots)


def secret(name: str, default: str = "") -> str:
    """A secret from the environment (``SARVIZ_<NAME>``) or Streamlit secrets (``name``)."""
    env = os.environ.get(f"SARVIZ_{name.upper()}")
    if env:
        return env
    try:
        import streamlit as st

        return str(st.secrets.get(name, default))
    except Exception:  # no Streamlit runtime or no secrets file: not an error
        return default
