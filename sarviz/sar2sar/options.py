"""The options of ``sarviz dataset pairs`` (import-light: the CLI builds its parser from them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

S1_GRD_ENL = 4.4  # Sentinel-1 IW GRDH, ESA product definition (~4.4 looks)


@dataclass
class PairsOptions:
    size: int = 256  # target chip, px
    factor: float = 2.0
    looks: float = S1_GRD_ENL  # the coarser product's ENL
    noise_floor_db: float | None = None  # NESZ of the coarser product; None: none added
    token: str = "<SAR>"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    block_km: float = 2.0
    seed: int = 0
    max_missing: float = 0.01

    def __post_init__(self) -> None:
        from sarviz.formats.sar2sar import Sar2SarError
        from sarviz.sar2sar.resample import check_factor

        check_factor(self.factor)
        if not (isinstance(self.size, int) and 32 <= self.size <= 4096 and self.size % 8 == 0):
            raise Sar2SarError(f"--size must be a multiple of 8 in [32, 4096], got {self.size!r}")
        if not (math.isfinite(self.looks) and 0.5 <= self.looks <= 1000):
            raise Sar2SarError(f"--looks must be in [0.5, 1000], got {self.looks!r}")
