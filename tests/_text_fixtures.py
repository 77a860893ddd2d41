"""Tiny random text-to-SAR models on disk: SD 1.5 / SDXL bases and a run folder (FORMATS C).

Sizes follow diffusers' own ``get_dummy_components`` for the StableDiffusion(XL)Pipeline
tests. The run folder is what ``sarviz train text`` writes: ``sarviz_text_model.json``,
``learned_embeds.safetensors`` (textual-inversion format), a PEFT LoRA on the text
encoder(s) (``PeftModel.save_pretrained``) and a UNet LoRA or a full UNet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from sarviz.calibration import DEFAULT_CALIBRATION

from _diffusion_fixtures import write_tokenizer

TOKEN = "<SAR>"
SIZE = 64  # px: 8 × 8 latents
TE_LORA = dict(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"], init_lora_weights=True)
UNET_LORA = dict(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=True)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run on one thread: a second OpenMP thread only spins (measured ×30 CPU time on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class TinyTextModel:
    base: Path
    run: Path
    kind: str


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _text_config(tok, hidden: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        hidden_size=hidden,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tok),
        max_position_embeddings=77,
        projection_dim=32,
        hidden_act="gelu",
    )


def _vae():
    from diffusers import AutoencoderKL

    # four levels: the real ×8 downsampling (64 px images → 8 × 8 latents, as 512 → 64), kept tiny
    return AutoencoderKL(
        block_out_channels=[16, 16, 16, 16],
        in_channels=3,
        out_channels=3,
        norm_num_groups=8,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=SIZE,
    )


def write_sd15_base(folder: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder / "_tok")
    tok.model_max_length = 77  # the byte-level fallback tokenizer has no limit; CLIP's is 77
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config(tok)),
        tokenizer=tok,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_sdxl_base(folder: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder / "_tok")
    tok.model_max_length = 77  # the byte-level fallback tokenizer has no limit; CLIP's is 77
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
    )
    pipe = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config(tok)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok)),
        tokenizer=tok,
        tokenizer_2=tok,
        unet=unet,
        scheduler=_scheduler(),
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def _lora_on(module, settings: dict, out: Path, seed: int) -> None:
    """A trained-looking PEFT LoRA on ``module`` (lora_B random, not PEFT's zero start), saved to ``out``."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(copy.deepcopy(module), LoraConfig(**settings))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    peft_model.save_pretrained(str(out))


def write_embeds(run: Path, kind: str, seed: int = 0, scale: float = 1.0) -> Path:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    if kind == "sdxl":
        state = {"clip_l": torch.randn(1, 32, generator=g) * scale, "clip_g": torch.randn(1, 32, generator=g) * scale}
    else:
        state = {TOKEN: torch.randn(32, generator=g) * scale}
    path = run / "learned_embeds.safetensors"
    save_file(state, str(path))
    return path


def write_run(
    run: Path, base: Path, kind: str = "sd15", unet: str = "lora", polarisation: str = "VV", seed: int = 0
) -> Path:
    """A `sarviz train text` output folder on ``base``."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    run.mkdir(parents=True, exist_ok=True)
    base_unet = UNet2DConditionModel.from_pretrained(str(base / "unet"))
    if unet == "full":
        torch.manual_seed(seed + 1)
        with torch.no_grad():
            for p in base_unet.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        base_unet.save_pretrained(str(run / "unet"), safe_serialization=True)
    else:
        _lora_on(base_unet, UNET_LORA, run / "unet_lora", seed + 2)
    _lora_on(CLIPTextModel.from_pretrained(str(base / "text_encoder")), TE_LORA, run / "text_encoder_lora", seed + 3)
    if kind == "sdxl":
        _lora_on(
            CLIPTextModelWithProjection.from_pretrained(str(base / "text_encoder_2")),
            TE_LORA,
            run / "text_encoder_2_lora",
            seed + 4,
        )
    write_embeds(run, kind, seed + 5)
    meta = {
        "format": "sarviz-text-sar/1",
        "base": str(base),
        "base_kind": kind,
        "token": TOKEN,
        "unet": unet,
        "calibration": DEFAULT_CALIBRATION.to_dict(),
        "polarisation": polarisation,
        "image_mode": "L" if polarisation == "VV" else "RGB",
        "resolution": SIZE,
        "recipe": {"note": "tiny random test model"},
        "step": 1,
    }
    (run / "sarviz_text_model.json").write_text(json.dumps(meta, indent=2))
    return run


def write_text_card(folder: Path, run: Path, model_id: str = "tiny-text", steps: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    card = {
        "id": model_id,
        "name": f"Tiny random {model_id}",
        "kind": "text-to-sar",
        "licence": "test only",
        "weights": {"run": str(run)},
        "sampler": {"steps": steps, "guidance": 3.0},
    }
    path = folder / f"{model_id}.json"
    path.write_text(json.dumps(card, indent=2))
    return path


def tiny_text_model(root: Path, kind: str = "sd15", unet: str = "lora", polarisation: str = "VV") -> TinyTextModel:
    base = (write_sdxl_base if kind == "sdxl" else write_sd15_base)(root / f"base-{kind}")
    run = write_run(root / f"run-{kind}-{unet}", base, kind=kind, unet=unet, polarisation=polarisation)
    return TinyTextModel(base=base, run=run, kind=kind)


# -- a tiny captioned dataset (FORMATS A, captioned/) ------------------------------------------------
LABEL_DB = {"water": (-19.0, 0.0), "trees": (-8.0, 0.3), "built": (-6.0, 0.9)}  # mean dB, texture strength


def speckle_db(rng, size: int, mean_db: float, texture: float, looks: int = 4):
    """Multi-look speckle (Gamma intensity) on a log-normal texture: dB image."""
    import numpy as np

    tex = np.exp(texture * rng.normal(size=(size // 8, size // 8)))
    tex = np.kron(tex, np.ones((8, 8)))[:size, :size] if texture else 1.0
    intensity = 10 ** (mean_db / 10) * tex * rng.gamma(looks, 1.0 / looks, size=(size, size))
    return (10 * np.log10(intensity)).astype("float32")


def write_captioned(
    root, n_per_label: int = 4, size: int = 128, seed: int = 0, polarisation: str = "VV", splits=("train", "test")
):
    """A captioned dataset of speckle images per label, 8-bit PNG with the default calibration."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    cal = DEFAULT_CALIBRATION
    rng = np.random.default_rng(seed)
    mode = "L" if polarisation == "VV" else "RGB"
    (root).mkdir(parents=True, exist_ok=True)
    (root / "caption_info.json").write_text(
        json.dumps(
            {
                "format": "sarviz-captioned/1",
                "token": TOKEN,
                "polarisation": polarisation,
                "calibration": cal.to_dict(),
                "image_mode": mode,
            }
        )
    )
    for split in splits:
        rows = []
        for label, (mean_db, texture) in LABEL_DB.items():
            for i in range(n_per_label):
                vv = speckle_db(rng, size, mean_db, texture)
                u = lambda a, p: (cal.to_unit(a, p) * 255).round().astype(np.uint8)  # noqa: E731
                if mode == "L":
                    img = Image.fromarray(u(vv, "VV"))
                else:
                    vh = speckle_db(rng, size, mean_db - 7, texture)
                    img = Image.fromarray(np.dstack([u(vv, "VV"), u(vh, "VH"), u(vv, "VV")]))
                ident = f"{split}-{label}-{i}"
                (root / split).mkdir(exist_ok=True)
                img.save(root / split / f"{ident}.png")
                rows.append(
                    {
                        "file_name": f"{ident}.png",
                        "text": f"{TOKEN} a SAR image of {label} number {i}",
                        "id": ident,
                        "label": label,
                        "lat": 40.0 + i,
                        "lon": -3.0,
                    }
                )
        (root / split / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def write_tiny_clip(folder, seed: int = 0):
    """A tiny random CLIPModel + CLIPProcessor (real CLIP tokenizer when ../shared is there) in a folder."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder.parent / f"_{folder.name}_tok")
    tok.model_max_length = 77
    text = dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tok),
        max_position_embeddings=77,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision = dict(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8
    )
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok,
    )
    model.save_pretrained(str(folder), safe_serialization=True)
    processor.save_pretrained(str(folder))
    return folder
