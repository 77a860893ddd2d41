"""docs/settings.md is generated from sarviz.settings and current; no SARVIZ_* variable is read elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from sarviz.settings import ENVIRONMENT, Settings, env, settings_markdown

ROOT = Path(__file__).resolve().parents[1]
ENV_READ = re.compile(r"os\.environ|getenv\(")


def test_settings_doc_is_current(monkeypatch):
    # the doc shows defaults under $SARVIZ_HOME, whatever this machine's home is
    monkeypatch.delenv("SARVIZ_HOME", raising=False)
    text = settings_markdown()
    assert (ROOT / "docs" / "settings.md").read_text(encoding="utf-8") == text, (
        "docs/settings.md is stale: python -m sarviz.settings --markdown > docs/settings.md"
    )
    from dataclasses import fields

    for f in fields(Settings):
        assert f"`SARVIZ_{f.name.upper()}`" in text
    for v in ENVIRONMENT:
        assert f"`{v.name}`" in text
    for name in (
        "SARVIZ_MAX_READ_MB",
        "SARVIZ_DTYPE_MEASURE",
        "SARVIZ_COMPILE",
        "SARVIZ_CHANNELS_LAST",
        "SARVIZ_DEBUG",
        "SARVIZ_MODELS",
        "SARVIZ_HOME",
        "SARVIZ_DEVICE",
        "SARVIZ_CONFIG",
        "SARVIZ_ADDRESS",
    ):
        assert f"`{name}`" in text, name


def _sarviz_names(source: str) -> set[str]:
    """Names bound to a "SARVIZ_…" string literal in a module (e.g. POINTS_ENV = "SARVIZ_PROXY_POINTS")."""
    return set(re.findall(r"^\s*(\w+)\s*=\s*[\"']SARVIZ_\w+[\"']", source, re.M))


def test_no_sarviz_variable_is_read_outside_the_settings_module():
    offenders = []
    files = [*(ROOT / "sarviz").rglob("*.py"), ROOT / "app.py", *(ROOT / "pages").glob("*.py")]
    for path in files:
        if path == ROOT / "sarviz" / "settings.py":
            continue
        source = path.read_text(encoding="utf-8")
        names = _sarviz_names(source)
        for n, line in enumerate(source.splitlines(), 1):
            if ENV_READ.search(line) and ("SARVIZ_" in line or any(re.search(rf"\b{x}\b", line) for x in names)):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "read SARVIZ_* through sarviz.settings (env/Settings/secret):\n" + "\n".join(offenders)


def test_env_reads_documented_variables_only(monkeypatch):
    monkeypatch.setenv("SARVIZ_DEBUG", "1")
    assert env("SARVIZ_DEBUG") == "1"
    monkeypatch.setenv("SARVIZ_DEBUG", "  ")
    assert env("SARVIZ_DEBUG", "x") == "x"  # empty means unset
    import pytest

    with pytest.raises(KeyError, match="not a documented sarviz variable"):
        env("SARVIZ_NOT_A_THING")
