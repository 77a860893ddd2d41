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
from sarviz.constants import QUALITY_ASPECTS  # noqa: F401 - re-exported (one list, in sarviz.constants)
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
    #: at most this many sessions per client (browser address; 0 = no limit) — keeps one person's
    #: throw-away sessions from flooding the results and the exposure counts. Open-link studies
    #: default to 1; invite-only studies may set 0 (invitees can share a lab's NAT address).
    max_sessions_per_client: int = 1
    #: participants need a one-use invite token (``sarviz study invite``) to start a session
    invite_only: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.images_per_session, int) or not 1 <= self.images_per_session <= 200:
            raise DesignError(
                f"images per session must be a whole number from 1 to 200, got {self.images_per_session!r}"
            )
        unknown = set(self.ratio) - set(SOURCES)
        if unknown:
            raise DesignError(
                f"unknown image source(s) {sorted(unknown)} in the ratio; sources are {', '.join(SOURCES)}"
            )
        if any((not isinstance(v, int)) or v < 0 for v in self.ratio.values()) or sum(self.ratio.values()) == 0:
            raise DesignError(
                f"the ratio needs whole, non-negative shares with at least one above zero, got {self.ratio}"
            )
        total = sum(self.ratio.values())
        if self.images_per_session % total:
            raise DesignError(
                f"{self.images_per_session} images cannot be split in the ratio "
                f"{ratio_text(self.ratio)}: use a multiple of {total}"
            )
        if not self.levels:
            raise DesignError("a study needs at least one participant level")
        if self.render not in RENDER_MODES:
            raise DesignError(f"render mode must be one of {', '.join(RENDER_MODES)}, got {self.render!r}")
        for name in ("vv_range_db", "vh_range_db"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise DesignError(f"{name}: the low end {lo} must be below the high end {hi}")
            setattr(self, name, (float(lo), float(hi)))
        if not isinstance(self.max_sessions_per_client, int) or self.max_sessions_per_client < 0:
            raise DesignError(
                f"sessions per client must be a whole number ≥ 0 (0 = no limit), got {self.max_sessions_per_client!r}"
            )
        self.invite_only = bool(self.invite_only)
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
        raise PoolTooSmall(
            "the study's image pool is empty: add images (real ones and generated ones) before inviting participants"
        )
    have = Counter(e.source for e in pool)
    need = design.per_session()
    missing = [
        f"{n - have.get(s, 0)} more {SOURCE_LABELS[s]} image(s) (has {have.get(s, 0)}, needs {n})"
        for s, n in need.items()
        if have.get(s, 0) < n
    ]
    if missing:
        raise PoolTooSmall(
            f"the pool is too small for {design.images_per_session} images a session in the ratio "
            f"{ratio_text(design.ratio)}: add " + "; ".join(missing)
        )


def balanced_pool(pool: Sequence[PoolEntry], design: StudyDesign) -> tuple[list[PoolEntry], dict[str, int]]:
    """The part of the pool that sessions draw from, sized to the design's ratio.

    Blinding: with every session taking ``per_session[s]`` images of source ``s``, an image of
    ``s`` is shown on average ``sessions × per_session[s] / pool_size[s]`` times. That is the
    same for every source only when pool sizes are in the design's ratio; otherwise how often an
    image appears tells its source (in a 1 : 1 : 2 study with equal pools, "ours" images would be
    shown twice as often). So each source uses ``k × ratio[s]`` of its images, with ``k`` as large
    as the smallest source allows; the rest (the most recently added) are held back. Returns the
    active entries and ``{source: held back}``.
    """
    by_source: dict[str, list[PoolEntry]] = defaultdict(list)
    for e in sorted(pool, key=lambda e: e.item_id):
        by_source[e.source].append(e)
    shares = {s: n for s, n in design.ratio.items() if n}
    k = min((len(by_source.get(s, [])) // n for s, n in shares.items()), default=0)
    active: list[PoolEntry] = []
    held: dict[str, int] = {}
    for source, entries in by_source.items():
        keep = k * shares.get(source, 0)
        active.extend(entries[:keep])
        if len(entries) > keep:
            held[source] = len(entries) - keep
    return active, held


def held_back_message(held: dict[str, int], pool: Sequence[PoolEntry], design: StudyDesign) -> str | None:
    """For the owner: which images are held back to keep exposure blind, and what would free them."""
    if not held:
        return None
    have = Counter(e.source for e in pool)
    shares = {s: n for s, n in design.ratio.items() if n}
    k_full = max((-(-have.get(s, 0) // n) for s, n in shares.items()), default=0)
    add = [
        f"{k_full * n - have.get(s, 0)} {SOURCE_LABELS[s]}" for s, n in shares.items() if k_full * n > have.get(s, 0)
    ]
    kept = ", ".join(f"{n} {SOURCE_LABELS.get(s, s)}" for s, n in held.items())
    return (
        f"{kept} image(s) are held back and not shown: pool sizes must follow the ratio "
        f"{ratio_text(design.ratio)} so that every image is shown equally often whatever its source "
        f"(otherwise how often an image appears reveals its source)."
        + (f" To use them all, add {', '.join(add)} image(s)." if add else "")
    )


def draw_session(
    pool: Sequence[PoolEntry], design: StudyDesign, rng: random.Random, exposure: dict[int, int] | None = None
) -> list[int]:
    """Draw one participant's images: the design's count per source, least-shown first,
    balanced across scene classes where the pool allows, in a random order. Returns item ids
    in display order.

    Exposure balance: only :func:`balanced_pool` is drawn from, and within each source the
    images shown least often so far (``exposure``: item id → sessions it was drawn for) are
    taken first, random among equals; so every image's exposure stays within one of every other
    image's, whatever its source, and exposure counts carry no label information.
    Class balance: among the least-shown images, a class not yet in this session is preferred.
    """
    check_pool(pool, design)
    active, _ = balanced_pool(pool, design)
    exposure = exposure or {}
    by_source: dict[str, list[PoolEntry]] = defaultdict(list)
    for e in active:
        by_source[e.source].append(e)
    chosen: list[int] = []
    for source, count in design.per_session().items():
        left = list(by_source[source])
        rng.shuffle(left)  # random among equals
        picked: list[PoolEntry] = []
        while len(picked) < count:
            low = min(exposure.get(e.item_id, 0) for e in left)
            candidates = [e for e in left if exposure.get(e.item_id, 0) == low]
            if design.balance_classes:
                seen = Counter(p.scene_class for p in picked)
                fewest = min(seen.get(e.scene_class, 0) for e in candidates)
                candidates = [e for e in candidates if seen.get(e.scene_class, 0) == fewest]
            pick = candidates[0]
            left.remove(pick)
            picked.append(pick)
        chosen.extend(p.item_id for p in picked)
    rng.shuffle(chosen)
    return chosen
