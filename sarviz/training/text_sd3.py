"""Seed 003 stage 1: text-to-SAR on a Stable Diffusion 3 / 3.5 base — LoRA on the MM-DiT attention.

``sarviz train text`` takes this path when the base's ``model_index.json`` names a
``StableDiffusion3Pipeline`` (SD 1.5 / SDXL bases keep seed 001's recipe, sarviz.training.text).

Recipe (seed 003 §2.2; what the paper leaves open is ours and marked ‡):

* LoRA ``W' = W + BA`` (eq. 13) on the joint-attention projections of every MM-DiT block:
  ``--lora-targets qkv`` (default, the paper's Q, K, V: ``attn.to_q/to_k/to_v``),
  ``diffusers`` (diffusers' SD3 DreamBooth set: also ``to_out.0``, the text stream's
  ``add_q/k/v_proj`` and ``to_add_out``) or ``diffusers+attn2`` (also SD 3.5's image-only
  ``attn2``); rank 32, α 16 ‡ (a common SD 3.5-Medium SAR LoRA setting; the paper gives none),
  lr 1e-4 ‡ (diffusers' SD3 LoRA default), AdamW, cosine schedule ‡;
* rectified flow: z_t = (1 − t)·x₀ + t·ε with t = σ from the base's FlowMatchEuler schedule
  (SD3's shift), t drawn with the **logit-normal density** (mean 0, std 1, SD3 paper's
  rf/lognorm(0.00, 1.00)); the target is the velocity ε − x₀ (the paper's eq. 2 writes
  ε-prediction; SD3 trains the velocity); SD3's loss weighting for this density is uniform
  (diffusers' ``compute_loss_weighting_for_sd3("logit_normal") = 1``); no Min-SNR (an ε/v
  weighting, not carried over);
* captions: ``SAR image, <caption>`` plus the imaging parameters (band, pixel spacing,
  polarisation; the incidence angle is already in sarviz's dataset captions when known),
  from the captioned dataset's ``caption_info.json`` ``imaging`` block or, for sarviz's own
  Sentinel-1 datasets, C-band / 10 m / its polarisation;
* text encoders frozen; a base without T5 (``text_encoder_3``) loads with
  ``text_encoder_3=None, tokenizer_3=None`` and diffusers zero-fills the T5 part.

Output: the run folder of ``sarviz train text`` written by :class:`sarviz.formats.text_run.TextRun`
(metadata with ``base_kind: sd3``, the MM-DiT LoRA in the kind's denoiser folder
``transformer_lora/`` as ``PeftModel.save_pretrained``, no learned token), checkpoints with
``accelerate_state/`` for ``--resume-from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from sarviz.errors import SarvizError
from sarviz.formats.text_run import TRANSFORMER_LORA_DIR, TextRun
from sarviz.formats.training_run import ACCELERATE_STATE
from sarviz.generators.text_sd3 import sd3_caption  # noqa: F401 - the captions' frame, shared with generation
from sarviz.training import common
from sarviz.training.common import TrainError
from sarviz.training.loop import TrainLoop

LORA_TARGET_SETS: dict[str, tuple[str, ...]] = {
    "qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "diffusers": (
        "attn.to_q",
        "attn.to_k",
        "attn.to_v",
        "attn.to_out.0",
        "attn.add_q_proj",
        "attn.add_k_proj",
        "attn.add_v_proj",
        "attn.to_add_out",
    ),
    "diffusers+attn2": (
        "attn.to_q",
        "attn.to_k",
        "attn.to_v",
        "attn.to_out.0",
        "attn.add_q_proj",
        "attn.add_k_proj",
        "attn.add_v_proj",
        "attn.to_add_out",
        "attn2.to_q",
        "attn2.to_k",
        "attn2.to_v",
        "attn2.to_out.0",
    ),
}
LORA_DIR = TRANSFORMER_LORA_DIR  # former name (sarviz.formats.text_run owns the folder name)


class _SD3Defaults(TypedDict):
    lora_rank: int
    lora_alpha: int
    lr: float
    logit_mean: float
    logit_std: float


SD3_DEFAULTS: _SD3Defaults = {"lora_rank": 32, "lora_alpha": 16, "lr": 1e-4, "logit_mean": 0.0, "logit_std": 1.0}
S1_IMAGING = {"band": "C", "pixel_spacing_m": 10}


def is_sd3_base(base: str | Path) -> bool:
    """True when the base folder is an SD3 / SD3.5 pipeline (the one ``base_kind`` rule); False otherwise,
    including an unreadable base (the SD 1.5 / SDXL trainer then says what is wrong with it)."""
    from sarviz.generators.base_model import KINDS, base_kind

    try:
        return base_kind(base, supported=KINDS) == "sd3"
    except SarvizError:
        return False


@dataclass
class SD3Settings:
    lora_rank: int = SD3_DEFAULTS["lora_rank"]
    lora_alpha: int = SD3_DEFAULTS["lora_alpha"]
    lora_targets: str = "qkv"
    lr: float = SD3_DEFAULTS["lr"]
    logit_mean: float = SD3_DEFAULTS["logit_mean"]
    logit_std: float = SD3_DEFAULTS["logit_std"]

    @classmethod
    def from_config(cls, config: Any) -> SD3Settings:
        s = cls(
            lora_rank=getattr(config, "lora_rank", None) or SD3_DEFAULTS["lora_rank"],
            lora_alpha=getattr(config, "lora_alpha", None) or SD3_DEFAULTS["lora_alpha"],
            lora_targets=getattr(config, "lora_targets", None) or "qkv",
            lr=getattr(config, "lr_lora", None) or SD3_DEFAULTS["lr"],
        )
        if s.lora_targets not in LORA_TARGET_SETS:
            raise TrainError(f"--lora-targets must be one of {', '.join(LORA_TARGET_SETS)}")
        if s.lora_rank < 1:
            raise TrainError("--lora-rank must be at least 1")
        return s


class SD3TextTrainer(TrainLoop):
    """The SD3 branch of ``sarviz train text`` (config: :class:`sarviz.training.text.TextTrainConfig`)."""

    name = "text-sd3"

    def __init__(self, config: Any) -> None:
        from sarviz.training.data import open_captioned

        c = self.config = config
        if getattr(c, "stage", "unet") != "unet":
            raise TrainError(
                "an SD3 base has one stage (the LoRA); --stage vae-decoder is seed 001's SD 1.5/SDXL refinement"
            )
        if c.resolution is not None:
            common.check_resolution(c.resolution, 16)  # VAE ×8 and 2×2 patches
        common.check_base(
            c.base, ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
        )
        self.sd3 = SD3Settings.from_config(c)
        self.data = open_captioned(c.data)
        info = self.data.info
        self.imaging = dict(info.get("imaging") or {**S1_IMAGING, "polarisation": info.get("polarisation", "VV")})
        self.work = c.out
        self.accelerator = None

    def setup(self) -> None:
        import torch
        from diffusers import (
            AutoencoderKL,
            FlowMatchEulerDiscreteScheduler,
            SD3Transformer2DModel,
            StableDiffusion3Pipeline,
        )
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig, get_peft_model
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        from sarviz.training.data import CaptionDataset, collate

        c = self.config
        from sarviz.training.common import read_text_model_meta

        self.start_accelerator(lambda ckpt: read_text_model_meta(Path(ckpt))["step"])
        acc = self.accelerator
        base = str(c.base)
        has_t5 = (Path(base) / "text_encoder_3").is_dir()
        try:
            transformer = SD3Transformer2DModel.from_pretrained(base, subfolder="transformer")
            self.vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
            self.scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(base, subfolder="scheduler")
            encoders = [
                CLIPTextModelWithProjection.from_pretrained(base, subfolder=s)
                for s in ("text_encoder", "text_encoder_2")
            ]
            tokenizers = [CLIPTokenizer.from_pretrained(base, subfolder=s) for s in ("tokenizer", "tokenizer_2")]
            extra = {}
            if has_t5:
                from transformers import T5EncoderModel, T5TokenizerFast

                extra = {
                    "text_encoder_3": T5EncoderModel.from_pretrained(base, subfolder="text_encoder_3"),
                    "tokenizer_3": T5TokenizerFast.from_pretrained(base, subfolder="tokenizer_3"),
                }
            else:
                extra = {"text_encoder_3": None, "tokenizer_3": None}
        except (OSError, ValueError) as exc:
            raise TrainError(f"cannot load the SD3 base from {base}: {str(exc).splitlines()[0]}") from None
        wdtype = common.weight_dtype(acc)
        for m in (transformer, self.vae, *encoders, *[v for v in extra.values() if isinstance(v, torch.nn.Module)]):
            m.requires_grad_(False)
        # a pipeline object only for its prompt encoder (CLIP-L + CLIP-G [+ T5], zero-filled without T5)
        self.prompt_pipe = StableDiffusion3Pipeline(
            transformer=transformer,
            scheduler=self.scheduler,
            vae=self.vae,
            text_encoder=encoders[0],
            tokenizer=tokenizers[0],
            text_encoder_2=encoders[1],
            tokenizer_2=tokenizers[1],
            **extra,
        )
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.resolution = c.resolution or int(transformer.config.sample_size) * self.vae_scale
        torch.manual_seed(common.seed_for(c.seed, -1))
        transformer.to(dtype=common.frozen_unet_dtype(acc))
        if c.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        lora = LoraConfig(
            r=self.sd3.lora_rank,
            lora_alpha=self.sd3.lora_alpha,
            init_lora_weights="gaussian",
            target_modules=list(LORA_TARGET_SETS[self.sd3.lora_targets]),
            bias="none",
        )
        transformer = get_peft_model(transformer, lora)
        cast_training_params(transformer, dtype=torch.float32)
        for m in (self.vae, *encoders):
            m.to(acc.device, dtype=wdtype if wdtype != torch.float16 else torch.float32)
        params = [p for p in transformer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=self.sd3.lr, betas=(0.9, 0.999), weight_decay=c.adam_weight_decay, eps=1e-8
        )
        self.dataset = CaptionDataset(self.data, "train", self.resolution, augment=c.random_flip, seed=c.seed)
        self.sampler = common.ShardedEpochSampler(
            len(self.dataset),
            c.batch_size,
            c.grad_accum,
            acc.num_processes,
            acc.process_index,
            c.seed,
            start_step=self.start_step,
        )
        self.max_steps = c.max_steps or (c.epochs or 8) * self.sampler.steps_per_epoch
        lr_scheduler = common.cosine_scheduler(optimizer, c.lr_warmup_steps, self.max_steps, acc.num_processes)
        common.drop_model_weights_hooks(acc)
        self.transformer, self.optimizer, self.lr_scheduler = acc.prepare(transformer, optimizer, lr_scheduler)
        if self.resume is not None:
            acc.load_state(str(self.resume / ACCELERATE_STATE))
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=c.batch_size, sampler=self.sampler, collate_fn=collate, num_workers=c.num_workers
        )
        self.start_log("text-sd3", base_kind="sd3", resolution=self.resolution, lora=self.lora_meta())

    def lora_meta(self) -> dict[str, Any]:
        return {
            "r": self.sd3.lora_rank,
            "alpha": self.sd3.lora_alpha,
            "targets": self.sd3.lora_targets,
            "target_modules": list(LORA_TARGET_SETS[self.sd3.lora_targets]),
        }

    def encode(self, texts: list[str]):
        import torch

        captions = [sd3_caption(t, self.imaging) for t in texts]
        with torch.no_grad():
            embeds, _, pooled, _ = self.prompt_pipe.encode_prompt(
                captions, captions, captions, device=self.accelerator.device, do_classifier_free_guidance=False
            )
        return embeds, pooled

    def micro_loss(self, batch):
        import torch
        from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3

        vae, device = self.vae, self.accelerator.device
        pixels = batch["pixel_values"].to(device)
        with torch.no_grad():
            latents = vae.encode(pixels.to(vae.dtype)).latent_dist.sample()
            latents = ((latents - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor).float()
        noise = torch.randn_like(latents)
        u = compute_density_for_timestep_sampling(
            "logit_normal", latents.shape[0], logit_mean=self.sd3.logit_mean, logit_std=self.sd3.logit_std
        )
        n = self.scheduler.config.num_train_timesteps
        indices = (u * n).long().clamp(0, n - 1)
        timesteps = self.scheduler.timesteps[indices].to(device)
        sigmas = self.scheduler.sigmas[indices].to(device).float().view(-1, 1, 1, 1)
        noisy = (1.0 - sigmas) * latents + sigmas * noise
        embeds, pooled = self.encode(batch["text"])
        pred = self.transformer(
            hidden_states=noisy,
            timestep=timesteps,
            encoder_hidden_states=embeds,
            pooled_projections=pooled,
            return_dict=False,
        )[0]
        weighting = compute_loss_weighting_for_sd3("logit_normal", sigmas)
        target = noise - latents
        return (weighting * (pred.float() - target) ** 2).reshape(latents.shape[0], -1).mean(dim=1).mean()

    def trained_modules(self) -> list:
        return [self.transformer]

    def describe(self) -> str:
        return f"batch {self.config.batch_size} × {self.resolution}² px, SD3 LoRA r {self.sd3.lora_rank}"

    def finish(self, step: int) -> Path | None:
        return self.save_checkpoint(step, final_to=self.config.out)

    def model_meta(self, step: int) -> dict[str, Any]:
        from sarviz.formats.text_run import FORMAT as MODEL_FORMAT

        c = self.config
        return {
            "format": MODEL_FORMAT,
            "base": str(Path(c.base).resolve()),
            "base_kind": "sd3",
            "token": "",
            "unet": "lora",
            "calibration": self.data.calibration.to_dict(),
            "polarisation": self.data.info.get("polarisation", "VV"),
            "image_mode": self.data.info.get("image_mode", "L"),
            "resolution": self.resolution,
            "step": step,
            "stage": "unet",
            "imaging": self.imaging,
            "caption_template": "SAR image, <caption>, <band>-band, <spacing> m pixel spacing, <pol> polarisation",
            "recipe": {
                "seed_paper": "003 cross-sensor, stage 1 (SD3 MM-DiT LoRA)",
                "lora": self.lora_meta(),
                "lr": self.sd3.lr,
                "lr_schedule": "cosine",
                "loss": "rectified flow, velocity target noise - x0",
                "timestep_density": {"logit_normal": {"mean": self.sd3.logit_mean, "std": self.sd3.logit_std}},
                "loss_weighting": "SD3 for logit-normal: uniform (no Min-SNR)",
                "shift": getattr(self.scheduler.config, "shift", None),
                "max_steps": self.max_steps,
                "batch_size": c.batch_size,
                "grad_accum": c.grad_accum,
                "mixed_precision": c.mixed_precision,
                "num_processes": self.accelerator.num_processes,
                "seed": c.seed,
                "dataset": str(self.data.folder.resolve()),
                "t5": (Path(c.base) / "text_encoder_3").is_dir(),
            },
        }

    def write_components(self, folder: Path, step: int) -> None:
        TextRun(folder, self.model_meta(step)).save(unet=self.accelerator.unwrap_model(self.transformer))


def train_text_sd3(config: Any) -> Path | None:
    return SD3TextTrainer(config).run()
