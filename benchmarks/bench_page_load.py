"""CPU seconds the Streamlit server spends per main-page load, by file-watcher setting.

A fresh clone made by ``./dev`` keeps its virtualenv in ``.venv`` inside the checkout, and
Streamlit's default watcher (watchdog) puts a recursive inotify watch on the app's folder for
every browser session. This benchmark reproduces that layout: a copy of the app (app.py,
pages/, .streamlit/, static/) in a temporary folder beside a ``.venv`` tree with as many
folders as the real one (10,226 on this machine, 9,191 in the issue), then loads the main
page N times in Debian Chromium (a new session each) and reads the server's CPU time
(user + system, psutil) before and after each load.

Settings compared: the project's ``.streamlit/config.toml`` (``fileWatcherType = "none"``),
``--server.fileWatcherType auto`` (Streamlit's default: watchdog), and ``poll``.

    python benchmarks/bench_page_load.py [--loads 5] [--venv-dirs 10226] [--out benchmarks/RESULTS_app.md]

Needs the sample scenes (../shared/samples, imported into a temp folder) and the local web
assets (./dev fetches them). Loads run one after another; the first load of each server
(imports, gazetteer, caches) is reported apart from the median of the rest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SETTINGS = {
    "project config (fileWatcherType none)": [],
    "fileWatcherType auto (watchdog, Streamlit's default)": ["--server.fileWatcherType", "auto"],
    "fileWatcherType poll": ["--server.fileWatcherType", "poll"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_checkout(dst: Path, venv_dirs: int) -> None:
    for name in ("app.py", "pages", ".streamlit", "static", "docs"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name)
        elif src.exists():
            shutil.copy2(src, dst / name)
    # a virtualenv-shaped tree: lib/python3.11/site-packages/<pkg>/<sub>/...
    base = dst / ".venv" / "lib" / "python3.11" / "site-packages"
    made = 0
    pkg = 0
    while made < venv_dirs:
        for sub in range(10):
            (base / f"pkg{pkg:04d}" / f"sub{sub}").mkdir(parents=True, exist_ok=True)
            made += 1 if sub else 2
        pkg += 1


def cpu_seconds(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def bench(checkout: Path, args_extra: list[str], env: dict, loads: int) -> tuple[float, list[float], list[float]]:
    import psutil

    from _browser import chromium_page, stop_server, wait_healthy

    port = free_port()
    streamlit = Path(sys.executable).parent / "streamlit"
    log = open(checkout / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen(
        [str(streamlit), "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1", *args_extra],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ps = psutil.Process(proc.pid)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, 300.0, log.name)
        cpu, wall = [], []
        with chromium_page(offline=True) as page:
            for _ in range(loads):
                time.sleep(1.0)  # let the previous session settle
                c0, t0 = cpu_seconds(ps), time.perf_counter()
                page.goto(base + "/")
                page.get_by_text("Click a place on the map").wait_for(timeout=120_000)
                frame = page.locator("iframe[title*='streamlit_folium']").first.content_frame
                frame.locator(".leaflet-container").wait_for(timeout=120_000)
                wall.append(time.perf_counter() - t0)
                time.sleep(2.0)  # watcher work after the page is up counts too
                cpu.append(cpu_seconds(ps) - c0)
        return cpu[0], cpu[1:], wall
    finally:
        stop_server(proc, log)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loads", type=int, default=5)
    p.add_argument("--venv-dirs", type=int, default=10_226)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_app.md"))
    args = p.parse_args()
    from sarviz.importers import import_scenes
    from sarviz.ui import webassets

    shared = Path(os.environ.get("SARVIZ_SHARED") or ROOT.parent / "shared") / "samples"
    if webassets.install():
        print("local web assets missing: run ./dev setup steps first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scenes = tmp / "scenes"
        import_scenes(shared, scenes)
        checkout = tmp / "checkout"
        checkout.mkdir()
        make_checkout(checkout, args.venv_dirs)
        n_dirs = sum(1 for _ in (checkout / ".venv").rglob("*"))
        env = {
            **os.environ,
            "SARVIZ_SCENES": str(scenes),
            "SARVIZ_HOME": str(tmp / "home"),
            "PYTHONPATH": str(ROOT),
            "SARVIZ_SOURCES": "local",
        }
        rows = []
        for name, extra in SETTINGS.items():
            first, rest, wall = bench(checkout, extra, env, args.loads)
            rows.append((name, first, statistics.median(rest) if rest else float("nan"), statistics.median(wall)))
            print(
                f"{name}: first load {first:.2f} CPU-s, then median {rows[-1][2]:.2f} CPU-s per load, "
                f"median wall {rows[-1][3]:.2f} s",
                flush=True,
            )
    load = os.getloadavg()
    lines = [
        "# Main-page load cost (CPU seconds of the Streamlit server per page load)",
        "",
        f"`python benchmarks/bench_page_load.py --loads {args.loads} --venv-dirs {args.venv_dirs}`: the app in a "
        f"checkout beside a `.venv` tree of {n_dirs:,} folders, each load a new browser session (Debian Chromium, "
        "offline), the 9 sample scenes. CPU = user + system time of the server process, from the request until "
        "2 s after the map is drawn. The first load of each server (imports, caches, gazetteer) is shown apart; "
        f"the median is over the other {args.loads - 1} loads.",
        "",
        "The `.venv` tree here is empty folders (inotify watches one a folder); a real virtualenv also has "
        "~100,000 files whose events the watcher handles, so the real cost of the default is higher: the issue "
        "measured 6.0 against 0.38 CPU-s per load (16×) in a real checkout.",
        "",
        f"Measured on the shared 2-core development machine, loaded by other work (load average "
        f"{load[0]:.1f} at the end): absolute numbers are inflated, ratios measured in this one run hold.",
        "",
        "| watcher setting | first load, CPU-s | later loads, median CPU-s | median wall time to the map, s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {f:.2f} | {m:.2f} | {w:.2f} |" for n, f, m, w in rows]
    base = rows[0][2]
    if base > 0:
        lines += [
            "",
            f"The default watcher costs {rows[1][2] / base:.1f}× the project setting per page load; "
            f"polling {rows[2][2] / base:.1f}×.",
        ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
