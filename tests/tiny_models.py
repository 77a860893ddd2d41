"""Every tiny random model the tests use, built from configs and saved in the real on-disk layouts.

One module for the SD 1.5, SDXL and SD3 bases, the HuiYanEarth-style 65-channel ControlNet with its
PEFT LoRA, the ``sarviz train text`` run folder (FORMATS C), a tiny CLIP and the captioned data.
Sizes follow diffusers' own ``get_dummy_components`` (tests/pipelines/stable_diffusion,
stable_diffusion_xl, stable_diffusion_3, controlnet): block_out_channels (4, 8) with
norm_num_groups=1, two-layer CLIP text encoders, a two-layer MM-DiT. Deviations, each for a reason:

* CLIP hidden size 32 (diffusers' SD dummy: 8): the SDXL time embedding (6 × 8 + 32 = 80), the SD3
  pooled projection (32 + 32 = 64) and the learned-token vectors of the text runs are 32-wide;
  a 32-wide two-layer text encoder costs nothing next to the UNet.
* The text-to-SAR bases keep the real ×8 VAE (four levels, 4 channels each) — 64 px images,
  8 × 8 latents as 512 → 64 — because the SAR→SAR tiler works in ×8 latent tiles
  (``sarviz/generators/sar2sar.py``) and small latents keep the UNet/MM-DiT cheap. The HuiYanEarth
  layout keeps its two-level VAE (diffusers' ControlNet dummy).
* ``LEARNING_CHANNELS`` (32, 64): the one base a test trains and requires to *overfit* (loss ÷ 3 in
  30 steps, ``test_train_geo.test_tiny_geo_model_overfits``) — the (4, 8) dummy has too few weights to.

Bases that tests only read are built once a session (the ``tiny_*`` fixtures below, registered as a
pytest plugin by ``conftest.py``); tests that change a base copy it first.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sarviz.calibration import DEFAULT_CALIBRATION

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "huiyanearth-sar"

IMAGE_SIZE = 64  # HuiYanEarth layout: 64 × 64 image, 32 × 32 latents (two-level VAE)
SIZE = 64  # text-to-SAR bases: 64 px, 8 × 8 latents (×8 VAE); SD3: 4 × 4 tokens of 2 × 2 patches
TINY_CHANNELS = (4, 8)  # diffusers' dummy UNet / ControlNet / VAE channels, with norm_num_groups=1
LEARNING_CHANNELS = (32, 64)  # a base a test trains and expects to learn (overfit) in a few steps
TEXT_HIDDEN = 32  # CLIP hidden size (see the module docstring)
TOKEN = "<SAR>"

# the published HuiYanEarth adapter_config.json: r=32, alpha=16, dropout 0.05, these target modules
LORA_SETTINGS = dict(
    r=32,
    lora_alpha=16,
    lora_dropout=0.05,
    bias="none",
    init_lora_weights=True,
    target_modules=["to_q", "to_v", "to_out.0", "conv1", "conv2", "to_k"],
)
TE_LORA = dict(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"], init_lora_weights=True)
UNET_LORA = dict(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=True)


def _groups(channels) -> int:
    return 1 if min(channels) < 32 else 32  # diffusers' dummies use 1; its default 32 for the larger size


# -- tokenizer and text encoders ---------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    # CLIP's byte → printable-unicode table (as in its BPE tokenizer), needed to build a
    # valid byte-level vocabulary without network access.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _tokenizer_source() -> str:
    if (REFERENCE / "tokenizer" / "vocab.json").is_file():
        return "reference CLIP tokenizer (../shared)"
    return "tiny byte-level CLIP tokenizer"


def write_tokenizer(folder: Path):
    """The real CLIP tokenizer (../shared) or a tiny byte-level one; returns (tokenizer, source).
    Saved as it comes (the reference one without model_max_length in its config, as a downloaded base
    may be: the loaders' guard for that is under test); the returned object says 77, CLIP's limit, so a
    pipeline saved with it records 77."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = _tokenizer_source()
    if source.startswith("reference"):
        tok = CLIPTokenizer.from_pretrained(str(REFERENCE / "tokenizer"))
    else:
        chars = list(_bytes_to_unicode().values())
        vocab = {c: i for i, c in enumerate(chars)}
        vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
        vocab["<|startoftext|>"] = len(vocab)
        vocab["<|endoftext|>"] = len(vocab)
        src = folder.parent / f"_{folder.name}_src"
        src.mkdir(exist_ok=True)
        (src / "vocab.json").write_text(json.dumps(vocab))
        (src / "merges.txt").write_text("#version: 0.2\n")
        # model_max_length as CLIP's (77): without it the tokenizer's "no limit" sentinel overflows
        # the Rust truncation settings when a pipeline pads to max_length
        tok = CLIPTokenizer(
            str(src / "vocab.json"), str(src / "merges.txt"), pad_token="<|endoftext|>", model_max_length=77
        )
    tok.save_pretrained(str(folder))
    tok.model_max_length = 77
    return tok, source


def fix_model_max_length(folder: Path, length: int = 77) -> None:
    """CLIP's 77-token limit in tokenizer_config.json (transformers 5 saves the reference
    tokenizer without it, and a pipeline then pads prompts to 10^30 tokens)."""
    path = Path(folder) / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["model_max_length"] = length
    path.write_text(json.dumps(cfg, indent=2))


def clip_text_config(tok, hidden: int = TEXT_HIDDEN):
    """diffusers' tiny CLIP text config (two layers, four heads), on ``tok``'s vocabulary."""
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


_text_config = clip_text_config  # the old private name (tests/_sd3_fixtures.py imported it)


# -- SD 1.5 parts ------------------------------------------------------------------------------------------
def sd15_unet(channels=TINY_CHANNELS, sample_size: int = SIZE // 8, layers_per_block: int = 2):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN,
        norm_num_groups=_groups(channels),
    )


def vae_x2(channels=TINY_CHANNELS):
    """diffusers' ControlNet-test VAE: two levels (×2 latents)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=list(channels),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=_groups(channels),
    )


def vae_x8(**extra):
    """Four levels: the real ×8 downsampling (64 px images → 8 × 8 latents, as 512 → 64), 4 channels each."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[4, 4, 4, 4],
        in_channels=3,
        out_channels=3,
        norm_num_groups=1,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=SIZE,
        **extra,
    )


def _pndm():
    from diffusers import PNDMScheduler

    # SD 1.5's own scheduler config
    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )


def _ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def write_sd15(
    folder: Path, channels=TINY_CHANNELS, vae: str = "x8", seed: int = 0, fix_max_length: bool = False
) -> Path:
    """A tiny SD 1.5 base folder (``StableDiffusionPipeline.save_pretrained``: model_index.json, unet/,
    vae/, text_encoder/, tokenizer/, scheduler/). ``vae="x2"`` with a PNDM scheduler is the
    HuiYanEarth base (64 px → 32 × 32 latents); ``"x8"`` with DDIM the text-to-SAR one (8 × 8 latents).
    The HuiYanEarth base keeps the tokenizer as written by :func:`write_tokenizer` (possibly without
    model_max_length); ``fix_max_length`` writes CLIP's 77 into its tokenizer_config.json."""
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder.parent / f"_{folder.name}_tok")
    x2 = vae == "x2"
    pipe = StableDiffusionPipeline(
        vae=vae_x2(channels) if x2 else vae_x8(),
        text_encoder=CLIPTextModel(clip_text_config(tok)),
        tokenizer=tok,
        unet=sd15_unet(channels, sample_size=IMAGE_SIZE // 2 if x2 else SIZE // 8),
        scheduler=_pndm() if x2 else _ddim(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    if x2:  # the published layout: the tokenizer folder as write_tokenizer left it
        shutil.rmtree(folder / "tokenizer")
        write_tokenizer(folder / "tokenizer")
    if fix_max_length:
        fix_model_max_length(folder / "tokenizer")
    return folder


def write_sd15_base(folder: Path, seed: int = 0) -> Path:
    """The text-to-SAR SD 1.5 base (diffusers' (4, 8) dummy UNet, ×8 VAE)."""
    return write_sd15(folder, seed=seed)


def write_tiny_sd15(root: Path, channels: tuple[int, int] = LEARNING_CHANNELS) -> Path:
    """The HuiYanEarth-layout SD 1.5 base ``root/sd15``; by default the size a trainer test can overfit,
    ``channels=TINY_CHANNELS`` where a test does not measure learning."""
    return write_sd15(Path(root) / "sd15", channels=channels, vae="x2", fix_max_length=True)


# -- SDXL --------------------------------------------------------------------------------------------------
def write_sdxl(folder: Path, seed: int = 0, vae: str = "x8", fix_max_length: bool = False) -> Path:
    """diffusers' SDXL dummy: UNet (2, 4) with norm_num_groups=1, text-time added conditions, two CLIPs."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder.parent / f"_{folder.name}_tok")
    unet = UNet2DConditionModel(
        block_out_channels=(2, 4),
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
        projection_class_embeddings_input_dim=80,  # 6 × 8 + 32
        cross_attention_dim=64,
        norm_num_groups=1,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae_x8() if vae == "x8" else vae_x2(),
        text_encoder=CLIPTextModel(clip_text_config(tok)),
        text_encoder_2=CLIPTextModelWithProjection(clip_text_config(tok)),
        tokenizer=tok,
        tokenizer_2=tok,
        unet=unet,
        scheduler=_ddim()
        if vae == "x8"
        else EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            steps_offset=1,
            beta_schedule="scaled_linear",
            timestep_spacing="leading",
        ),
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    if fix_max_length:
        fix_model_max_length(folder / "tokenizer")
        fix_model_max_length(folder / "tokenizer_2")
    return folder


def write_sdxl_base(folder: Path, seed: int = 0) -> Path:
    return write_sdxl(folder, seed=seed)


def write_tiny_sdxl(root: Path, seed: int = 0) -> Path:
    """``root/sdxl``: the SDXL dummy as the trainers' tests had it (two-level VAE, Euler scheduler)."""
    return write_sdxl(Path(root) / "sdxl", seed=seed, vae="x2", fix_max_length=True)


# -- SD3 ---------------------------------------------------------------------------------------------------
def write_sd3_base(folder: Path, seed: int = 0) -> Path:
    """diffusers' SD3 dummy: two MM-DiT layers, head dim 8, 4 heads, joint dim 32, pooled 64, two tiny CLIPs,
    no T5 (the SD3 code paths run without ``text_encoder_3``; the real release ships it optional too)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    folder = Path(folder)
    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder.parent / f"_{folder.name}_tok")
    transformer = SD3Transformer2DModel(
        sample_size=SIZE // 8,
        patch_size=2,
        in_channels=4,
        # two layers, not diffusers' one: the last MM-DiT block is context-pre-only (no to_add_out), and the
        # "diffusers" LoRA target set must find to_add_out in some block
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae_x8(shift_factor=0.0609, scaling_factor=1.5035, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=CLIPTextModelWithProjection(clip_text_config(tok)),
        tokenizer=tok,
        text_encoder_2=CLIPTextModelWithProjection(clip_text_config(tok)),
        tokenizer_2=tok,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_sd3_run(run: Path, base: Path, seed: int = 0) -> Path:
    """An SD3 text run without training: a random (B ≠ 0) q/k/v LoRA on the base's MM-DiT, written by TextRun."""
    import torch
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


# -- the HuiYanEarth checkpoint: 65-channel ControlNet + PEFT UNet LoRA ------------------------------------
@dataclass
class TinyCheckpoint:
    root: Path
    base: Path
    controlnet: Path
    lora: Path
    lora_tensors: dict  # exactly what was written to adapter_model.safetensors
    conditioning_channels: int
    tokenizer_source: str


def write_tiny_checkpoint(
    root: Path, conditioning_channels: int = 65, seed: int = 0, channels: tuple[int, int] = TINY_CHANNELS
) -> TinyCheckpoint:
    """The HuiYanEarth-SAR release layout (see ../shared/README.md), tiny and random::

        <root>/sd15/{unet,vae,text_encoder,tokenizer,scheduler}/...   # base SD 1.5
        <root>/controlnet/checkpoint-1/config.json                   # says conditioning_channels: 3
        <root>/controlnet/checkpoint-1/diffusion_pytorch_model.safetensors  # 65-ch, "module." keys
        <root>/controlnet/checkpoint-1/unet_lora/{adapter_config.json,adapter_model.safetensors}

    Sizes of diffusers' ControlNet pipeline dummy (channels (4, 8), norm_num_groups=1): no test
    measures pixel statistics of this random model, only what the loaders and the pipeline do with it.
    """
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file

    root = Path(root)
    base = write_sd15(root / "sd15", channels=channels, vae="x2", seed=seed)
    tok_source = _tokenizer_source()
    torch.manual_seed(seed + 1)
    controlnet = ControlNetModel(
        block_out_channels=channels,
        layers_per_block=2,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=TEXT_HIDDEN,
        conditioning_embedding_out_channels=(16, 32),
        conditioning_channels=conditioning_channels,
        norm_num_groups=_groups(channels),
    )
    with torch.no_grad():  # ControlNet zero-convs start at 0: give them weights so the condition matters
        for p in controlnet.parameters():
            if not p.any():
                p.normal_(0.0, 0.1)
    cn_dir = root / "controlnet" / "checkpoint-1"
    cn_dir.mkdir(parents=True)
    config = json.loads(controlnet.to_json_string())
    config["conditioning_channels"] = 3  # what the published training script wrote
    config["_name_or_path"] = "lllyasviel/sd-controlnet-canny"
    (cn_dir / "config.json").write_text(json.dumps(config, indent=2))
    save_file(
        {f"module.{k}": v.contiguous() for k, v in controlnet.state_dict().items()},
        str(cn_dir / "diffusion_pytorch_model.safetensors"),
    )

    unet = UNet2DConditionModel.from_pretrained(str(base / "unet"))
    peft_unet = get_peft_model(unet, LoraConfig(**LORA_SETTINGS))
    with torch.no_grad():  # PEFT starts lora_B at 0 (a no-op LoRA): make it a trained-looking one
        for name, p in peft_unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    peft_unet.save_pretrained(str(cn_dir / "unet_lora"))
    lora_tensors = load_file(str(cn_dir / "unet_lora" / "adapter_model.safetensors"))
    return TinyCheckpoint(
        root=root,
        base=base,
        controlnet=cn_dir,
        lora=cn_dir / "unet_lora",
        lora_tensors=lora_tensors,
        conditioning_channels=conditioning_channels,
        tokenizer_source=tok_source,
    )


def write_card(folder: Path, ckpt: TinyCheckpoint, model_id: str = "tiny-sar", steps: int = 2, **extra) -> Path:
    """A model card for ``ckpt`` (absolute paths, 64-px preprocessing, 2 steps)."""
    folder.mkdir(parents=True, exist_ok=True)
    card = {
        "id": model_id,
        "name": f"Tiny random {model_id}",
        "kind": "controlnet-lora",
        "licence": "test only",
        "weights": {"controlnet": str(ckpt.controlnet), "base": str(ckpt.base), "unet_lora": "unet_lora"},
        "how_to_get": "run tests/tiny_models.write_tiny_checkpoint",
        "sampler": {"steps": steps},
        "preprocessing": {"size": IMAGE_SIZE},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    path = folder / f"{model_id}.json"
    path.write_text(json.dumps(card, indent=2))
    return path


# -- the `sarviz train text` run folder (FORMATS C) --------------------------------------------------------
@dataclass
class TinyTextModel:
    base: Path
    run: Path
    kind: str


def _lora_on(module, settings: dict, out: Path, seed: int) -> None:
    """A trained-looking PEFT LoRA on ``module`` (lora_B random, not PEFT's zero start), saved to ``out``."""
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
    """``learned_embeds.safetensors`` in the textual-inversion format (one vector per text encoder)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    if kind == "sdxl":
        state = {
            "clip_l": torch.randn(1, TEXT_HIDDEN, generator=g) * scale,
            "clip_g": torch.randn(1, TEXT_HIDDEN, generator=g) * scale,
        }
    else:
        state = {TOKEN: torch.randn(TEXT_HIDDEN, generator=g) * scale}
    path = run / "learned_embeds.safetensors"
    save_file(state, str(path))
    return path


def write_run(
    run: Path, base: Path, kind: str = "sd15", unet: str = "lora", polarisation: str = "VV", seed: int = 0
) -> Path:
    """A `sarviz train text` output folder on ``base``: sarviz_text_model.json, learned_embeds.safetensors,
    PEFT LoRA(s) on the text encoder(s) and a UNet LoRA or a full UNet."""
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
    """A text run on a base. The base is the session's read-only one when the session cache is set up
    (``conftest.py`` registers this module as a plugin), else built under ``root``."""
    root = Path(root)
    base = cached_base(kind) or (write_sdxl_base if kind == "sdxl" else write_sd15_base)(root / f"base-{kind}")
    run = write_run(root / f"run-{kind}-{unet}", base, kind=kind, unet=unet, polarisation=polarisation)
    return TinyTextModel(base=base, run=run, kind=kind)


def write_tiny_clip(folder, seed: int = 0):
    """A tiny random CLIPModel + CLIPProcessor (real CLIP tokenizer when ../shared is there) in a folder."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    tok, _ = write_tokenizer(folder.parent / f"_{folder.name}_tok")
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


# -- captioned data (FORMATS A, captioned/: a 🤗 imagefolder) -------------------------------------------------
LABEL_DB = {"water": (-19.0, 0.0), "trees": (-8.0, 0.3), "built": (-6.0, 0.9)}  # mean dB, texture strength


def speckle_db(rng, size: int, mean_db: float, texture: float, looks: int = 4):
    """Multi-look speckle (Gamma intensity) on a log-normal texture: dB image."""
    tex = np.exp(texture * rng.normal(size=(size // 8, size // 8)))
    tex = np.kron(tex, np.ones((8, 8)))[:size, :size] if texture else 1.0
    intensity = 10 ** (mean_db / 10) * tex * rng.gamma(looks, 1.0 / looks, size=(size, size))
    return (10 * np.log10(intensity)).astype("float32")


def _caption_info(token: str, polarisation: str, image_mode: str) -> str:
    return json.dumps(
        {
            "format": "sarviz-captioned/1",
            "token": token,
            "polarisation": polarisation,
            "calibration": DEFAULT_CALIBRATION.to_dict(),
            "image_mode": image_mode,
        }
    )


def write_captioned_speckle(
    root, n_per_label: int = 4, size: int = 128, seed: int = 0, polarisation: str = "VV", splits=("train", "test")
):
    """A captioned dataset of speckle images per label (``LABEL_DB``), 8-bit PNG with the default
    calibration. Its pixel statistics are under test (histogram KL, GLCM, the text-evaluation metrics):
    sizes are the callers' choice, not shrunk here."""
    from PIL import Image

    root = Path(root)
    cal = DEFAULT_CALIBRATION
    rng = np.random.default_rng(seed)
    mode = "L" if polarisation == "VV" else "RGB"
    root.mkdir(parents=True, exist_ok=True)
    (root / "caption_info.json").write_text(_caption_info(TOKEN, polarisation, mode))
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


def write_captioned_from_patches(dataset: Path, image_mode: str = "L", token: str = TOKEN) -> Path:
    """``dataset/captioned`` from a patch dataset's patches (VV → grey via the calibration)."""
    from PIL import Image

    from sarviz.scene import read_scene

    dataset = Path(dataset)
    out = dataset / "captioned"
    with open(dataset / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    words = ["farmland", "water", "forest", "town"]
    lines: dict[str, list[str]] = {}
    for n, r in enumerate(rows):
        split = {"val": "validation"}.get(r["split"], r["split"])
        scene = read_scene(dataset / r["file"])
        vv = DEFAULT_CALIBRATION.to_unit(scene.vv_db, "VV")
        if image_mode == "L":
            img = Image.fromarray((vv * 255).round().astype(np.uint8), mode="L")
        else:
            vh = DEFAULT_CALIBRATION.to_unit(scene.vh_db, "VH")
            img = Image.fromarray((np.stack([vv, vh, vv], -1) * 255).round().astype(np.uint8), mode="RGB")
        (out / split).mkdir(parents=True, exist_ok=True)
        img.save(out / split / f"{r['id']}.png")
        text = f"{token} Sentinel-1 VV image of {words[n % len(words)]}, descending orbit"
        lines.setdefault(split, []).append(
            json.dumps(
                {
                    "file_name": f"{r['id']}.png",
                    "text": text,
                    "id": r["id"],
                    "label": "crops",
                    "lat": float(r["lat"]),
                    "lon": float(r["lon"]),
                }
            )
        )
    for split, ls in lines.items():
        (out / split / "metadata.jsonl").write_text("\n".join(ls) + "\n")
    (out / "caption_info.json").write_text(_caption_info(token, "VV" if image_mode == "L" else "VV+VH", image_mode))
    return out


# -- built once a session ----------------------------------------------------------------------------------
_SESSION: dict[str, Path] = {}  # the session cache folder ("root") and the bases built in it
_BUILDERS = {"sd15": write_sd15_base, "sdxl": write_sdxl_base, "sd3": write_sd3_base}


def cached_base(kind: str) -> Path | None:
    """The session's read-only ``kind`` base (built on first use), or None outside a pytest session
    that loaded this plugin (benchmarks, a plain import)."""
    root = _SESSION.get("root")
    if root is None:
        return None
    if kind not in _SESSION:
        _SESSION[kind] = _BUILDERS[kind](root / kind)
    return _SESSION[kind]


@pytest.fixture(scope="session", autouse=True)
def tiny_model_cache(tmp_path_factory):
    """Where the session's shared tiny bases live (under pytest's basetemp, removed with it)."""
    _SESSION.clear()
    _SESSION["root"] = tmp_path_factory.mktemp("tiny-models")
    yield _SESSION["root"]
    _SESSION.clear()


@pytest.fixture(scope="session")
def tiny_sd15_base(tiny_model_cache) -> Path:
    """The text-to-SAR SD 1.5 base, read-only (copy it to change it)."""
    return cached_base("sd15")


@pytest.fixture(scope="session")
def tiny_sdxl_base(tiny_model_cache) -> Path:
    """The text-to-SAR SDXL base, read-only."""
    return cached_base("sdxl")


@pytest.fixture(scope="session")
def tiny_sd3_base(tiny_model_cache) -> Path:
    """The SD3 base (no T5), read-only."""
    return cached_base("sd3")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> TinyCheckpoint:
    """The HuiYanEarth-layout ControlNet + LoRA checkpoint, read-only, built once a session
    (test_diffusion, the generator contract and the batch tests share it)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_ckpt"))
