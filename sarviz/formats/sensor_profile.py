"""A sensor profile (seed 003): the statistics that tell one SAR sensor's images from another's.

::

    NAME.json   {"format": "sarviz-sensor-profile/1", "name", "n_images", "enl_median",
                 "enl_per_image", "hf_ratio_median", "hf_radius", "histogram",
                 "saturated_fraction", "glcm", "notes"}

    COMPARISON.json  {"format": "sarviz-sensor-comparison/1", "reference": <profile>,
                      "sets": [<profile>, ...], "distances": {name: {...}}}

:class:`SensorProfile` holds one set's profile (computed by
:func:`sarviz.metrics.sensor_profile.sensor_profile`); :class:`SensorComparison` is what
``sarviz sensor-profile --out`` writes (a reference, the compared sets and their distances).
Both write atomically (:func:`sarviz.atomic.write_json`) and read back with one-line
:class:`~sarviz.errors.FormatError` s naming the file.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from sarviz.atomic import write_json
from sarviz.errors import FormatError
from sarviz.formats.base import Artifact, read_json_object, register_artifact

FORMAT = "sarviz-sensor-profile/1"
COMPARISON_FORMAT = "sarviz-sensor-comparison/1"
#: the name a profile comparison gets when the caller gives a folder (the Sensor page, batch use)
COMPARISON_FILE = "sensor_profile.json"


@register_artifact
@dataclass
class SensorProfile(Artifact):
    """Statistics of one image set (definitions: :mod:`sarviz.metrics.sensor_profile`)."""

    artifact: ClassVar[str] = "sensor-profile"
    what: ClassVar[str] = "sensor profile"
    FORMAT: ClassVar[str] = FORMAT

    name: str
    n_images: int
    enl_median: float
    enl_per_image: list[float]
    hf_ratio_median: float
    hf_radius: float
    histogram: list[float]  # pooled normalised-amplitude histogram (probabilities)
    saturated_fraction: float
    glcm: dict[str, float]  # feature → mean over distances, angles, images
    notes: list[str] = field(default_factory=list)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sensor profile") -> SensorProfile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise FormatError(f"{where}: not a sensor profile (format {found!r}, expected {FORMAT!r})")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names - set(data) if n not in ("notes", "format"))
        if missing:
            raise FormatError(f"{where}: sensor profile lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SensorProfile:
        path = Path(path)
        return cls.from_dict(read_json_object(path, cls.what, FORMAT), str(path))

    # former names (this session's branch)
    def write(self, path: str | os.PathLike[str]) -> Path:
        return self.save(path)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SensorProfile:
        return cls.load(path)


@register_artifact
@dataclass
class SensorComparison(Artifact):
    """A reference profile, the profiles compared with it and their distances (``sarviz sensor-profile --out``)."""

    artifact: ClassVar[str] = "sensor-comparison"
    what: ClassVar[str] = "sensor-profile comparison"
    FORMAT: ClassVar[str] = COMPARISON_FORMAT
    FILES: ClassVar[tuple[str, ...]] = (COMPARISON_FILE,)

    reference: SensorProfile
    sets: list[SensorProfile]
    distances: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": COMPARISON_FORMAT,
            "reference": self.reference.to_dict(),
            "sets": [p.to_dict() for p in self.sets],
            "distances": self.distances,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        return write_json(path / COMPARISON_FILE if path.is_dir() else path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SensorComparison:
        path = Path(path)
        path = path / COMPARISON_FILE if path.is_dir() else path
        data = read_json_object(path, cls.what, COMPARISON_FORMAT)
        try:
            return cls(
                SensorProfile.from_dict(data["reference"], str(path)),
                [SensorProfile.from_dict(p, str(path)) for p in data["sets"]],
                dict(data["distances"]),
            )
        except (KeyError, TypeError) as exc:
            raise FormatError(f"{path}: not a {cls.what} ({exc})") from None
