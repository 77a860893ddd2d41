"""Tiny random-weight HuiYanEarth-style checkpoints, written to disk in the published layout.

Layout written (same as the HuiYanEarth-SAR release, see ../shared/README.md)::

    <root>/sd15/{unet,vae,text_encoder,tokenizer,scheduler}/...   # base SD 1.5 (tiny)
    <root>/controlnet/checkpoint-1/config.json                   # says conditioning_channels: 3
    <root>/controlnet/checkpoint-1/diffusion_pytorch_model.safetensors  # 65-ch, "module." keys
    <root>/controlnet/checkpoint-1/unet_lora/adapter_config.json        # PeftModel.save_pretrained
    <root>/controlnet/checkpoint-1/unet_lora/adapter_model.safetensors

Model sizes follow diffusers' own ``get_dummy_components`` for the ControlNet pipeline
tests (block_out_channels (4, 8) with norm_num_groups=1, cross_attention_dim 32, a tiny CLIP
text encoder): no test here measures pixel statistics of this random model, only what the
loaders and the pipeline do with it.
The tokenizer is the real CLIP tokenizer from ../shared/reference when it is there, else a
byte-level CLIP tokenizer built offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "huiyanearth-sar"
IMAGE_SIZE = 64  # tiny generation: 64 × 64 image, 32 × 32 latents
TINY_CHANNELS = (4, 8)  # diffusers' ControlNet pipeline tests (with norm_num_groups=1)
LEARNING_CHANNELS = (32, 64)  # a base a test trains and expects to learn (overfit) in a few steps


def _groups(channels) -> int:
    return 1 if min(channels) < 32 else 32  # diffusers' default 32 groups, as before, for the larger size


# the published adapter_config.json: r=32, alpha=16, dropout 0.05, these target modules
LORA_SETTINGS = dict(
    r=32,
    lora_alpha=16,
    lora_dropout=0.05,
    bias="none",
    init_lora_weights=True,
    target_modules=["to_q", "to_v", "to_out.0", "conv1", "conv2", "to_k"],
)


@dataclass
class TinyCheckpoint:
    root: Path
    base: Path
    controlnet: Path
    lora: Path
    lora_tensors: dict  # exactly what was written to adapter_model.safetensors
    conditioning_channels: int
    tokenizer_source: str


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


def write_tokenizer(folder: Path):
    """The real CLIP tokenizer (../shared) or a tiny byte-level one; returns (tokenizer, source)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    if (REFERENCE / "tokenizer" / "vocab.json").is_file():
        tok = CLIPTokenizer.from_pretrained(str(REFERENCE / "tokenizer"))
        source = "reference CLIP tokenizer (../shared)"
    else:
        chars = list(_bytes_to_unicode().values())
        vocab = {c: i for i, c in enumerate(chars)}
        vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
        vocab["<|startoftext|>"] = len(vocab)
        vocab["<|endoftext|>"] = len(vocab)
        src = folder.parent / "_tok_src"
        src.mkdir(exist_ok=True)
        (src / "vocab.json").write_text(json.dumps(vocab))
        (src / "merges.txt").write_text("#version: 0.2\n")
        # model_max_length as CLIP's (77): without it the tokenizer's "no limit" sentinel overflows
        # the Rust truncation settings when a pipeline pads to max_length
        tok = CLIPTokenizer(
            str(src / "vocab.json"), str(src / "merges.txt"), pad_token="<|endoftext|>", model_max_length=77
        )
        source = "tiny byte-level CLIP tokenizer"
    tok.save_pretrained(str(folder))
    return tok, source


def write_tiny_checkpoint(
    root: Path, conditioning_channels: int = 65, seed: int = 0, channels: tuple[int, int] = TINY_CHANNELS
) -> TinyCheckpoint:
    """``channels``: the UNet/VAE/ControlNet block_out_channels; (32, 64) where a test trains the base and
    needs it to learn (diffusers' older dummy size), the (4, 8) default everywhere else."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, PNDMScheduler, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    root = Path(root)
    base = root / "sd15"
    torch.manual_seed(seed)
    tok, tok_source = write_tokenizer(base / "tokenizer")
    unet = UNet2DConditionModel(
        block_out_channels=channels,
        layers_per_block=2,
        sample_size=IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=_groups(channels),
    )
    vae = AutoencoderKL(
        block_out_channels=list(channels),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=_groups(channels),
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tok),
            max_position_embeddings=77,
            projection_dim=32,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    unet.save_pretrained(base / "unet")
    vae.save_pretrained(base / "vae")
    text_encoder.save_pretrained(base / "text_encoder")
    scheduler.save_pretrained(base / "scheduler")
    (base / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": "0.42.1",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "scheduler": ["diffusers", "PNDMScheduler"],
                "safety_checker": [None, None],
                "feature_extractor": [None, None],
            },
            indent=2,
        )
    )

    controlnet = ControlNetModel(
        block_out_channels=channels,
        layers_per_block=2,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
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
        "how_to_get": "run tests/_diffusion_fixtures.write_tiny_checkpoint",
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
