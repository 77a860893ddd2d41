"""The seed-001 toy case, built by code: four real crops at −20/−15/−10/−5 dB against four
generated images at −12 dB, all with the same (correct) speckle — Gamma intensity of 4.4 looks,
64×64 px, seed 0. Each image normalised by its own μ+3σ looks alike, so seed 001's pooled KL is
small (0.0049, sampling noise only); pooling raw dB and normalising once gave 3.50."""

from __future__ import annotations

import numpy as np

REAL_DB = (-20.0, -15.0, -10.0, -5.0)
GENERATED_DB = -12.0
LOOKS = 4.4
SIZE = 64
#: seed 001's KL of the toy sets (per-image μ+3σ, then pooled), and the old `sarviz evaluate` value
KNOWN_KL = 0.00488
OLD_POOLED_RAW_KL = 3.50


def toy_sets(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(real dB images, generated dB images), float32, SIZE×SIZE."""
    rng = np.random.default_rng(seed)

    def speckled(mean_db: float) -> np.ndarray:
        return (mean_db + 10 * np.log10(rng.gamma(LOOKS, 1 / LOOKS, (SIZE, SIZE)))).astype(np.float32)

    real = [speckled(m) for m in REAL_DB]
    generated = [speckled(GENERATED_DB) for _ in range(4)]
    return real, generated
