"""Study design and the per-participant draw of images.

Defaults follow seed 000 §4.4 (HuiYanEarth-SAR's hierarchical double-blind study): three
expertise levels, 12 images a session in the ratio real : other generators : ours = 1 : 1 : 2,
randomised per participant, and three tasks per image — (i) real SAR or model-generated,
(ii) quality 1–5 for overall realism, detail plausibility and geographic consistency,
(iii) confidence 1–5. Everything is configurable per study.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from sarviz.calibration import DEFAULT_CALIBRATION
from sarviz.study.db import StudyError
from sarviz.study.models import SOURCE_LABELS, SOURCES


class DesignError(StudyError):
    """A study design is not valid."""


class PoolTooSmall(StudyError):
    """The pool cannot fill one session in the design's ratio; the message says what to add."""


DEFAULT_LEVELS: dict[str, str] = {
    "L1": "Novice with SAR basics (1–3 years)",
    "L2": "Familiar with SAR processing (3–5 years)",
    "L3": "Expert SAR interpreter (5 years or more)",
}
DEFAULT_CONSENT = (
    "I agree to take part in this study. My answers (expertise level, judgements, scores, "
    "confidence and time per image) are stored without my name and used for research. "
    "I can stop at any time."
)
QUALITY_ASPECTS: dict[str, str] = {
    "realism": "Overall realism",
    "detail": "Detail plausibility",
    "geographic": "Geographic consistency",
}
RENDER_MODES = ("vv_gray", "vv_vh_rgb")


@dataclass
class StudyDesign:
    images_per_session: int = 12
    #: relative share of each source in a session (seed 000: 1 : 1 : 2)
    ratio: dict[str, int] = field(default_factory=lambda: {"real": 1, "other": 1, "ours": 2})
    levels: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    consent_text: str = DEFAULT_CONSENT
    #: how SAR GeoTIFFs are drawn for participants: grey VV, or R=VV G=VH B=VV (fixed dB stretch)
    render: str = "vv_gray"
    vv_range_db: tuple[float, float] = DEFAULT_CALIBRATION.range("VV")  # sarviz.calibration: the one range
    vh_range_db: tuple[float, float] = DEFAULT_CALIBRATION.range("VH")
    #: every image is shown at this size (px, square) so that size reveals nothing
    display_px: int = 512
    balance_classes: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.images_per_session, int) or not 1 <= self.images_per_session <= 200:
            raise DesignError(f"images per session must be a whole number from 1 to 200, got {self.images_per_session!r}")
        unknown = set(self.ratio) - set(SOURCES)
        if unknown:
            raise DesignError(f"unknown image source(s) {sorted(unknown)} in the ratio; sources are {', '.join(SOURCES)}")
        if any((not isinstance(v, int)) or v < 0 for v in self.ratio.values()) or sum(self.ratio.values()) == 0:
            raise DesignError(f"the ratio needs whole, non-negative shares with at least one above zero, got {self.ratio}")
        total = sum(self.ratio.values())
        if self.images_per_session % total:
            raise DesignError(
                f"{self.images_per_session} images cannot be split in the ratio "
                f"{ratio_text(self.ratio)}: use a multiple of {total}")
        if not self.levels:
            raise DesignError("a study needs at least one participant level")
        if self.render not in RENDER_MODES:
            raise DesignError(f"render mode must be one of {', '.join(RENDER_MODES)}, got {self.render!r}")
        for name in ("vv_range_db", "vh_range_db"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise DesignError(f"{name}: the low end {lo} must be below the high end {hi}")
            setattr(self, name, (float(lo), float(hi)))
        if not 64 <= int(self.display_px) <= 2048:
            raise DesignError(f"display size must be 64–2048 px, got {self.display_px}")

    def per_session(self) -> dict[str, int]:
        """How many images of each source one session shows (12 at 1:1:2 → 3, 3, 6)."""
        unit = self.images_per_session // sum(self.ratio.values())
        return {src: self.ratio.get(src, 0) * unit for src in SOURCES if self.ratio.get(src, 0)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vv_range_db"] = list(self.vv_range_db)
        d["vh_range_db"] = list(self.vh_range_db)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudyDesign":
        d = dict(d)
        for k in ("vv_range_db", "vh_range_db"):
            if k in d:
                d[k] = tuple(d[k])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def ratio_text(ratio: dict[str, int]) -> str:
    return " : ".join(f"{SOURCE_LABELS.get(s, s)} {ratio[s]}" for s in SOURCES if s in ratio)


def parse_ratio(text: str) -> dict[str, int]:
    """``"1:1:2"`` (real : other : ours) or ``"real=1,ours=2"`` → {source: share}."""
    text = text.strip()
    try:
        if "=" in text:
            out = {}
            for part in text.split(","):
                k, v = part.split("=")
                out[k.strip()] = int(v)
            return out
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise DesignError(f"cannot read the ratio {text!r}: write it as real:other:ours, e.g. 1:1:2") from None
    if len(parts) != 3:
        raise DesignError(f"the ratio {text!r} needs three numbers real:other:ours, e.g. 1:1:2")
    return dict(zip(SOURCES, parts))


@dataclass(frozen=True)
class PoolEntry:
    """What the draw needs to know about a pooled image."""

    item_id: int
    source: str
    scene_class: str


def check_pool(pool: Sequence[PoolEntry], design: StudyDesign) -> None:
    """Raise :class:`PoolTooSmall` naming what is missing when one session cannot be filled."""
    if not pool:
        raise PoolTooSmall("the study's image pool is empty: add images (real ones and generated ones) "
                           "before inviting participants")
    have = Counter(e.source for e in pool)
    need = design.per_session()
    missing = [f"{n - have.get(s, 0)} more {SOURCE_LABELS[s]} image(s) (has {have.get(s, 0)}, needs {n})"
               for s, n in need.items() if have.get(s, 0) < n]
    if missing:
        raise PoolTooSmall(
            f"the pool is too small for {design.images_per_session} images a session in the ratio "
            f"{ratio_text(design.ratio)}: add " + "; ".join(missing))


def draw_session(pool: Sequence[PoolEntry], design: StudyDesign, rng: random.Random) -> list[int]:
    """Draw one participant's images: the design's count per source, balanced across scene
    classes where the pool allows, in a random order. Returns item ids in display order.

    Balancing: within each source the classes are visited round-robin in a random order
    and one random unused image is taken from each, so a session shows as many different
    classes as the pool has before repeating one.
    """
    check_pool(pool, design)
    by_source: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for e in pool:
        by_source[e.source][e.scene_class].append(e.item_id)
    chosen: list[int] = []
    for source, count in design.per_session().items():
        classes = {c: rng.sample(ids, len(ids)) for c, ids in by_source[source].items()}
        if not design.balance_classes:
            flat = [i for ids in classes.values() for i in ids]
            chosen.extend(rng.sample(flat, count))
            continue
        picked: list[int] = []
        while len(picked) < count:
            order = [c for c in classes if classes[c]]
            rng.shuffle(order)
            # Prefer classes with more left so repeated draws spread over the whole pool.
            for c in order:
                if len(picked) == count:
                    break
                picked.append(classes[c].pop())
        chosen.extend(picked)
    rng.shuffle(chosen)
    return chosen
