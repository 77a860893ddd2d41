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

HOME = Path(os.environ.get("SARVIZ_HOME", Path.home() / ".sarviz"))


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

    @classmethod
    def load(cls, config_file: Path | None = None) -> "Settings":
        values: dict[str, Any] = {}
        config_file = config_file or Path(os.environ.get("SARVIZ_CONFIG", HOME / "sarviz.toml"))
        if config_file.is_file():
            with config_file.open("rb") as fh:
                values.update(tomllib.load(fh))
        for f in fields(cls):
            env = os.environ.get(f"SARVIZ_{f.name.upper()}")
            if env is not None:
                values[f.name] = env
        out = cls()
        for f in fields(cls):
            if f.name not in values:
                continue
            raw = values[f.name]
            if f.name == "scenes":
                raw = Path(os.path.expanduser(str(raw)))
            elif f.name == "sources":
                raw = tuple(s.strip() for s in (raw.split(",") if isinstance(raw, str) else raw) if s.strip())
            elif f.name == "network_timeout":
                raw = float(raw)
            setattr(out, f.name, raw)
        return out


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
