"""The text-to-SAR test helpers under their old names: the tiny models, the run folder (FORMATS C) and the
captioned speckle data live in ``tests/tiny_models.py``; the one-thread fixture stays here."""

from __future__ import annotations

import pytest

from tiny_models import (  # noqa: F401 - the old names, imported by the text test modules
    LABEL_DB,
    SIZE,
    TE_LORA,
    TOKEN,
    UNET_LORA,
    TinyTextModel,
    _lora_on,
    _text_config,
    speckle_db,
    tiny_text_model,
    write_embeds,
    write_run,
    write_sd15_base,
    write_sdxl_base,
    write_text_card,
    write_tiny_clip,
    write_tokenizer,
)
from tiny_models import write_captioned_speckle as write_captioned  # noqa: F401


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run on one thread: a second OpenMP thread only spins (measured ×30 CPU time on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
