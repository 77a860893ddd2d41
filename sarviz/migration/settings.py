"""Migration settings (no heavy imports: the CLI builds its options from these defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from sarviz.errors import GenerationError


@dataclass
class MigrationSettings:
    """Every choice of one migration run (defaults: seed 003's weights, the AD code's optimiser)."""

    steps: int = 200  # DDIM timesteps (AD code: 200)
    iters: int = 1  # Adam iterations per timestep (AD code: 1)
    learning_rate: float = 0.05  # Adam (AD code)
    layers: str = "ad-default"  # preset or names/globs (sarviz.migration.attention)
    w_ad: float = 1.0
    w_cnt: float = 0.25  # seed 003 and the AD code
    w_sp: float = 0.1  # seed 003
    w_f: float = 0.1  # seed 003
    hf_radius: float = 0.25  # M_HF = 1 beyond 0.25 × Nyquist (ours; the paper gives no radius)
    patches: int = 32  # M (ours; not given)
    patch_size: int = 16  # N px (ours; sarviz's ENL window)
    decode_every: int = 1  # K: L_sp and L_f every K-th iteration
    decode_crop: int = 0  # latent px of the decoded crop (0 = whole latent)

    def check(self) -> MigrationSettings:
        if self.steps < 1 or self.iters < 1:
            raise GenerationError("steps and iters must be at least 1")
        if not (self.learning_rate > 0):
            raise GenerationError("the learning rate must be positive")
        for name in ("w_ad", "w_cnt", "w_sp", "w_f"):
            if getattr(self, name) < 0:
                raise GenerationError(f"loss weight {name} must be ≥ 0")
        if not 0 < self.hf_radius < 1:
            raise GenerationError("--hf-radius is a fraction of the Nyquist frequency in (0, 1)")
        if self.patches < 1 or self.patch_size < 4:
            raise GenerationError("--patches must be ≥ 1 and --patch-size ≥ 4 px")
        if self.decode_every < 1 or self.decode_crop < 0:
            raise GenerationError("--decode-every must be ≥ 1 and --decode-crop ≥ 0")
        return self
