"""A tiny SD3 base (diffusers' SD3 test sizes, no T5) and a tiny SD3 text run (seed 003 stage 1)."""

from __future__ import annotations

from pathlib import Path

import torch

from sarviz.calibration import DEFAULT_CALIBRATION

from _diffusion_fixtures import write_tokenizer
from _text_fixtures import _text_config

SIZE = 64  # px: 8 × 8 latents, 4 × 4 tokens of 2 × 2 patches


def write_sd3_base(folder: Path, seed: int = 0) -> Path:
    """diffusers' tiny SD3 test sizes: 2 layers, head dim 8, 4 heads, joint dim 32, pooled 64, two tiny CLIPs, no T5."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder / "_tok")
    tok.model_max_length = 77
    transformer = SD3Transformer2DModel(
        sample_size=SIZE // 8,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[16, 16, 16, 16],
        in_channels=3,
        out_channels=3,
        norm_num_groups=8,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=SIZE,
        shift_factor=0.0609,
        scaling_factor=1.5035,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=CLIPTextModelWithProjection(_text_config(tok)),
        tokenizer=tok,
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok)),
        tokenizer_2=tok,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_sd3_run(run: Path, base: Path, seed: int = 0) -> Path:
    """An SD3 text run without training: a random (B ≠ 0) q/k/v LoRA on the base's MM-DiT, written by TextRun."""
    from diffusers import SD3Transformer2DModel
    from peft import LoraConfig, get_peft_model

    from sarviz.formats.text_run import FORMAT, TextRun

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel.from_pretrained(str(base / "transformer"))
    model = get_peft_model(
        transformer, LoraConfig(r=2, lora_alpha=2, target_modules=["attn.to_q", "attn.to_k", "attn.to_v"])
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    meta = {
        "format": FORMAT,
        "base": str(base),
        "base_kind": "sd3",
        "token": "",
        "unet": "lora",
        "calibration": DEFAULT_CALIBRATION.to_dict(),
        "polarisation": "VV",
        "image_mode": "L",
        "resolution": SIZE,
        "step": 0,
        "imaging": {"band": "C", "pixel_spacing_m": 10, "polarisation": "VV"},
        "recipe": {"note": "tiny random test model"},
    }
    TextRun(run, meta).save(unet=model)
    return run
