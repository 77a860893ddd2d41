"""Settings: environment variables over ``sarviz.toml`` over defaults.

This module is the one place sarviz reads ``SARVIZ_*`` environment variables: the
:class:`Settings` fields, the process switches in :data:`ENVIRONMENT` (read with :func:`env`)
and the secrets (:func:`secret`). ``docs/settings.md`` is generated from them:
``python -m sarviz.settings --markdown > docs/settings.md``.

Every setting has an environment variable (``SARVIZ_<NAME>``), so the app, the CLI and
CI can be configured the same way. Secrets (Earth Engine keys, the study owner password)
can also come from Streamlit's ``.streamlit/secrets.toml`` through
:func:`secret`; they are never written to settings files.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, dataclass, field, fields
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
            return prefix + os.path.expanduser(url[len(prefix) :])
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
    #: built and captioned datasets (`sarviz dataset build --out` under it) the Prompt page and
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
        return (self.scenes, self.pool_dir, self.upload_dir, self.batches, self.datasets, self.runs, *self.roots)


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


# -- process switches: SARVIZ_* variables that are not Settings fields ------------------------------------
@dataclass(frozen=True)
class EnvVar:
    """One ``SARVIZ_*`` variable read outside :class:`Settings` (a switch of the process, not a folder/URL)."""

    name: str
    default: str
    doc: str
    #: "call": read each time it is needed; "import": read once when its module is imported
    when: str = "call"


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar(
        "SARVIZ_HOME",
        "~/.sarviz",
        "sarviz's home folder: the default scene, pool, upload, batch, dataset and run "
        "folders, the study database, registered model cards (models/), caches",
        "import (defaults) and call",
    ),
    EnvVar(
        "SARVIZ_CONFIG",
        "$SARVIZ_HOME/sarviz.toml",
        "the settings file (TOML; keys are the setting names in lower case)",
    ),
    EnvVar(
        "SARVIZ_MODELS",
        "",
        "extra folders of model cards, separated by the OS path separator (after the "
        "shipped sarviz/models and $SARVIZ_HOME/models)",
    ),
    EnvVar("SARVIZ_DEBUG", "", "any value: the CLI prints the full traceback of an unexpected error"),
    EnvVar(
        "SARVIZ_MAX_READ_MB",
        "2048",
        "the most decoded pixel data (MB) sarviz reads from one file; a file "
        "whose header claims more is refused before reading",
        "import",
    ),
    EnvVar(
        "SARVIZ_DTYPE_MEASURE",
        "1",
        "0/off: pick the diffusion dtype by the rule of thumb instead of timing a UNet block on this machine",
    ),
    EnvVar("SARVIZ_DTYPE_CACHE", "$SARVIZ_HOME/dtype-choice.json", "the file the measured dtype choice is cached in"),
    EnvVar(
        "SARVIZ_COMPILE",
        "auto",
        "on/off: torch.compile the diffusion UNet and ControlNet (on the CPU with inductor freezing: faster "
        "steady state, minutes for the first call); auto: only when step times measured by earlier generations "
        "here say the job (one image's steps, a render's tile·steps) pays the compile back, per model and "
        "image size (benchmarks/RESULTS_cpu_speed.md)",
    ),
    EnvVar(
        "SARVIZ_CHANNELS_LAST",
        "auto",
        "on/off: channels-last memory layout of the denoisers (auto: as `sarviz doctor` measured it on this "
        "machine; unmeasured: on for CUDA, off for the CPU; a compiled CPU pipeline is channels-last)",
    ),
    EnvVar(
        "SARVIZ_ATTENTION",
        "auto",
        "sdpa/classic: the diffusion attention backend (auto: what `sarviz doctor` "
        "measured, else PyTorch's fused scaled-dot-product kernels)",
    ),
    EnvVar(
        "SARVIZ_HASH_CACHE",
        "SARVIZ_HOME/sha256-cache.json",
        "the cross-process cache of weight-file SHA-256 hashes (keyed by path, size and modification time)",
    ),
    EnvVar(
        "SARVIZ_PROXY_POINTS",
        "../shared/samples/alphaearth_s1_points",
        "the AlphaEarth sample points the PROXY embedding is built from",
    ),
    EnvVar(
        "SARVIZ_SHARED",
        "../shared beside the checkout",
        "the shared sample-data folder (tests, land cover reference data)",
    ),
    EnvVar("SARVIZ_ADDRESS", "127.0.0.1", "the address `./dev app` listens on (read by ./dev, not Python)"),
    EnvVar("SARVIZ_VENV", ".venv in the checkout", "the virtualenv ./dev creates and uses (read by ./dev)"),
    EnvVar("SARVIZ_LINT_FORMAT", "1", "0: `./dev lint` skips `ruff format --check` (read by ./dev)"),
)

#: secrets: SARVIZ_<NAME> in the environment, else ``name`` in Streamlit's secrets.toml (:func:`secret`)
SECRETS: dict[str, str] = {
    "ee_project": "Earth Engine Cloud project id (also a setting)",
    "ee_key_file": "Earth Engine service-account key file (also a setting)",
    "study_owner_password": "the study owner's password hash (`sarviz study hash-password`)",
}

_SWITCH_WORDS = {
    "1": "on",
    "true": "on",
    "yes": "on",
    "on": "on",
    "0": "off",
    "false": "off",
    "no": "off",
    "off": "off",
}


def env(name: str, default: str | None = None) -> str | None:
    """The value of a documented ``SARVIZ_*`` process variable now (``default`` when unset or empty)."""
    if name not in {v.name for v in ENVIRONMENT}:
        raise KeyError(f"{name} is not a documented sarviz variable (add it to sarviz.settings.ENVIRONMENT)")
    value = os.environ.get(name)
    return value if value is not None and value.strip() else default


def env_switch(name: str, default: str) -> str:
    """A switch variable as "on", "off" or its own lower-cased word (e.g. "auto")."""
    value = (env(name, default) or default).strip().lower()
    return _SWITCH_WORDS.get(value, value)


def max_read_bytes() -> int:
    """``SARVIZ_MAX_READ_MB`` in bytes (the per-file read cap)."""
    raw = env("SARVIZ_MAX_READ_MB", "2048") or "2048"
    try:
        return int(float(raw) * 2**20)
    except ValueError:
        raise ConfigError(f"SARVIZ_MAX_READ_MB must be a number of megabytes, got {raw!r}") from None


def _field_docs() -> dict[str, str]:
    """The ``#:`` comment above each :class:`Settings` field, from this module's source."""
    import inspect

    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(Settings).splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
        elif ":" in text and not text.startswith(("#", "@", "def ", "class ", '"')) and pending is not None:
            name = text.split(":", 1)[0].strip()
            if name.isidentifier() and pending:
                docs[name] = " ".join(pending)
            pending = []
        elif not text.startswith("#"):
            pending = []
    return docs


def _default_text(f: Any) -> str:
    value = f.default_factory() if f.default_factory is not MISSING else f.default
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
    text = str(value)
    home = str(HOME)
    return text.replace(home, "$SARVIZ_HOME") if home else text


def settings_markdown() -> str:
    """docs/settings.md: every SARVIZ_* variable, generated from this module (do not edit the file by hand)."""
    docs = _field_docs()
    lines = [
        "# Settings",
        "",
        "<!-- generated by `python -m sarviz.settings --markdown > docs/settings.md`; do not edit -->",
        "",
        "Every setting is an environment variable `SARVIZ_<NAME>`; the settings below can also be keys "
        "(lower case) of the settings file `$SARVIZ_HOME/sarviz.toml` (`SARVIZ_CONFIG`). The environment "
        "wins over the file, the file over the default. An empty value means the default.",
        "",
        "## Settings (`sarviz.settings.Settings`)",
        "",
        "| variable | meaning | default |",
        "|---|---|---|",
    ]
    for f in fields(Settings):
        lines.append(f"| `SARVIZ_{f.name.upper()}` | {docs.get(f.name, '')} | `{_default_text(f) or '(empty)'}` |")
    lines += [
        "",
        "## Process switches (`sarviz.settings.ENVIRONMENT`)",
        "",
        "Not in the settings file: they change how this process runs.",
        "",
        "| variable | meaning | default | read |",
        "|---|---|---|---|",
    ]
    for v in ENVIRONMENT:
        lines.append(f"| `{v.name}` | {v.doc} | `{v.default or '(empty)'}` | {v.when} |")
    lines += [
        "",
        "## Secrets (`sarviz.settings.secret`)",
        "",
        "`SARVIZ_<NAME>` in the environment, else `<name>` in Streamlit's `.streamlit/secrets.toml`; "
        "never written to settings files.",
        "",
        "| variable | secrets.toml key | meaning |",
        "|---|---|---|",
    ]
    for name, doc in SECRETS.items():
        lines.append(f"| `SARVIZ_{name.upper()}` | `{name}` | {doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        print("usage: python -m sarviz.settings --markdown  (prints docs/settings.md)", file=sys.stderr)
        raise SystemExit(2)
    sys.stdout.write(settings_markdown())
