"""Click → scene lookup → crop → display-ready arrays, for a 512×512 scene (issue "Foundation").

Uses the Sen1Floods11 chip from ../shared/samples (imported into a temporary scene folder)
plus a synthetic 2048×2048 scene with all 71 bands, to show the cost of a crop from a larger
file. Prints the median of several runs per stage. Target: < 200 ms for the whole path.

    python benchmarks/bench_scene_lookup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    from conftest import make_scene
    from sarviz.importers import import_scenes
    from sarviz.scene import write_scene
    from sarviz.store import SceneStore
    from sarviz.ui.scene_view import scene_images

    samples = ROOT.parent / "shared" / "samples" / "sen1floods11"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = []
        if samples.is_dir():
            import_scenes(samples, folder)
            cases.append(("Sen1Floods11 chip 512² (all layers but angle/embedding)", (38.1058, -0.7589)))
        else:
            print("../shared/samples absent: benchmarking the synthetic scene only")
        big = make_scene(size=(2048, 2048), scene_id="big")
        write_scene(big, folder / "big.tif")
        cases.append(("synthetic 2048² scene, all 71 bands, 512² crop", big.center_latlon))
        store = SceneStore(folder)
        print(f"{'case':<58} {'lookup+crop':>12} {'display':>9} {'total':>9}   (median of {args.runs}, ms)")
        for name, (lat, lon) in cases:
            t_lookup, scene = timed(lambda: store.lookup(lat, lon, 512), args.runs)
            t_display, _ = timed(lambda: scene_images(scene), args.runs)
            t_total, _ = timed(lambda: scene_images(store.lookup(lat, lon, 512)), args.runs)
            print(f"{name:<58} {t_lookup:>12.1f} {t_display:>9.1f} {t_total:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
