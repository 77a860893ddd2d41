"""Tiny scenes for the generator tests; the tiny models moved to ``tests/tiny_models.py``
(re-exported here under their old names, which other test modules import)."""

from __future__ import annotations

import numpy as np

from tiny_models import (  # noqa: F401 - the old names
    IMAGE_SIZE,
    LEARNING_CHANNELS,
    LORA_SETTINGS,
    REFERENCE,
    SHARED,
    TINY_CHANNELS,
    TinyCheckpoint,
    _bytes_to_unicode,
    _groups,
    write_card,
    write_tiny_checkpoint,
    write_tokenizer,
)


def tiny_scene(height: int = 24, width: int = 40, angle: bool = False, embedding: bool = True, seed: int = 1):
    """A small UTM scene with a smooth random embedding field (and optionally an angle ramp)."""
    from affine import Affine

    from sarviz.scene import Scene

    rng = np.random.default_rng(seed)
    emb = None
    if embedding:
        # AlphaEarth embeddings are unit-length 64-D vectors; smooth in space like land cover
        coarse = rng.normal(size=(64, 4, 5)).astype(np.float32)
        emb = np.kron(coarse, np.ones((height // 4 + 1, width // 5 + 1), np.float32))[:, :height, :width]
        emb /= np.linalg.norm(emb, axis=0, keepdims=True)
    ang = np.tile(np.linspace(31.0, 44.0, width, dtype=np.float32), (height, 1)) if angle else None
    return Scene(
        crs="EPSG:32630",
        transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4200000.0),
        width=width,
        height=height,
        embedding=emb,
        angle_deg=ang,
        scene_id=f"tiny-{seed}",
        provenance={"source": "test"},
    )
