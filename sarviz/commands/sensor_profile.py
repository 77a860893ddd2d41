"""``sarviz sensor-profile DIR``: ENL, high-frequency energy, amplitude histogram and GLCM of a sensor's images.

    sarviz sensor-profile fc1_refs/ --compare content=gen/ --compare migrated=migrated/ --json

DIR is the reference set (the target sensor's real images); each ``--compare NAME=DIR`` set
is profiled too and its distance to the reference printed as a table (or JSON), so the
effect of a migration is a number before and after. Images are read as in ``sarviz migrate``
(GeoTIFF band or grey image, A/(μ+3σ) clipped to [0, 1]; every statistic here is invariant
to the scale). Definitions: sarviz/metrics/sensor_profile.py, docs/cross-sensor.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sensor-profile",
        help="profile a set of SAR images and its distance to a reference sensor",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("dir", type=Path, help="reference images (folder of the target sensor)")
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another set to profile and compare with the reference (repeatable)",
    )
    p.add_argument("--hf-radius", type=float, default=0.25, help="high-pass radius, fraction of Nyquist (default 0.25)")
    p.add_argument("--out", type=Path, default=None, help="also write the profiles and distances as JSON here")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=run)


def _profile(name: str, folder: str | Path, hf_radius: float):
    from sarviz.metrics.sensor_profile import sensor_profile
    from sarviz.migration.images import list_images, read_sar_image

    images = [read_sar_image(path, name).db() for path in list_images(folder, name)]
    return sensor_profile(name, images, hf_radius)


def run(args: argparse.Namespace) -> int:
    from sarviz.errors import CliError
    from sarviz.formats.sensor_profile import SensorComparison
    from sarviz.metrics.sensor_profile import distance_table, profile_distance

    if not 0 < args.hf_radius < 1:
        raise CliError("--hf-radius is a fraction of Nyquist in (0, 1)")
    sets = []
    for item in args.compare:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise CliError(f"--compare takes NAME=DIR, got {item!r}")
        sets.append((name, folder))
    reference = _profile(args.dir.name or "reference", args.dir, args.hf_radius)
    others = [_profile(name, folder, args.hf_radius) for name, folder in sets]
    comparison = SensorComparison(reference, others, {p.name: profile_distance(reference, p) for p in others})
    if args.out:
        comparison.save(args.out)
    if args.json:
        print(json.dumps(comparison.to_dict(), sort_keys=True))
    else:
        print(distance_table(reference, others))
    return 0
