"""The geo-conditioned trainer (seed 000, HuiYanEarth-SAR): SD 1.5 + 65-channel ControlNet + UNet LoRA.

Recipe (paper 000 and the reference ``train_sar_regray.py``; deviations marked ‡):

* ControlNet initialised from the base UNet (``ControlNetModel.from_unet``) ‡ — the reference
  started from the canny ControlNet with a channel-averaged first conv; ``from_unet`` is the
  ControlNet paper's initialisation and needs no second download — with a 65-channel
  conditioning input made by the inference condition builder;
* LoRA r 32, α 16, dropout 0.05 on the UNet's to_q, to_k, to_v, to_out.0, conv1, conv2; the
  ControlNet and the LoRA are trained together, the rest of SD 1.5 is frozen;
* ε-prediction MSE with offset noise γ = 0.2 and Min-SNR-γ = 5 weighting;
* AdamW (lr 2e-5, weight decay 1e-2) with a cosine schedule ‡ (the reference used a constant
  lr), gradient clipping at 1.0 ‡, gradient checkpointing, mixed precision;
* the fixed reference prompt as the text condition (no caption);
* target: ``calibration.to_signed`` of VV, VH and VV again (one calibration, written into
  every checkpoint).

Run in-process (``sarviz train geo``) or under ``accelerate launch -m sarviz.training.geo``.
Checkpoints follow sarviz.formats.controlnet (the published layout + ``sarviz_train.json`` + ``accelerate_state/``).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarviz.cli_args import deprecated_alias
from sarviz.formats.controlnet import RUN_FORMAT, TRAIN_META, ControlNetCheckpoint  # noqa: F401 - re-exported
from sarviz.formats.training_run import ACCELERATE_STATE
from sarviz.training import common
from sarviz.training.common import TrainError
from sarviz.training.loop import TrainLoop

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2")
DEFAULT_COND_EMBEDDING = (16, 32, 96, 256)  # ControlNet's default: downsamples the condition by 8


@dataclass
class GeoTrainConfig:
    data: Path
    base: Path
    out: Path
    max_steps: int = 7500  # the published release is checkpoint-7500
    resolution: int = 512
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-5
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    lora_rank: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    offset_noise: float = 0.2
    snr_gamma: float = 5.0
    mixed_precision: str = "auto"  # the inference dtype choice of this machine
    gradient_checkpointing: bool = True
    augment: bool = True
    resume_from: str | None = None
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = None
    validate_every: int = 500
    validation_count: int = 4
    validation_steps: int = 20
    seed: int = 0
    vae: str | None = None
    #: load pickle (.bin) weights of the base too (default: safetensors only, as the generators)
    allow_pickle: bool = False
    prompt: str | None = None
    stop_after_steps: int | None = None
    log_every: int = 10
    num_workers: int = 0
    calibration: dict[str, Any] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data, self.base, self.out = Path(self.data), Path(self.base), Path(self.out)


# -- CLI arguments (shared by `sarviz train geo` and `python -m sarviz.training.geo`) -----------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    d = GeoTrainConfig(data=Path("."), base=Path("."), out=Path("."))
    p.add_argument("--data", required=True, metavar="OUT", help="dataset folder written by `sarviz dataset build`")
    p.add_argument("--base", required=True, metavar="SD15_DIR", help="local Stable Diffusion 1.5 diffusers folder")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoints, logs, validation)")
    p.add_argument("--vae", default=None, help="VAE folder overriding the base's (the reference used sd-vae-ft-mse)")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load pickle (.bin) base weights: they can run code when loaded (default: safetensors only)",
    )
    p.add_argument("--max-steps", type=int, default=d.max_steps, help=f"optimizer steps (default {d.max_steps})")
    p.add_argument("--resolution", type=int, default=d.resolution, help="training size in pixels, a multiple of 8")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="patches per process per micro-batch")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum, help="micro-batches per optimizer step")
    p.add_argument("--learning-rate", dest="lr", type=float, default=d.lr, help="AdamW learning rate (cosine schedule)")
    p.add_argument("--lr-warmup-steps", type=int, default=d.lr_warmup_steps)
    p.add_argument("--lora-rank", type=int, default=d.lora_rank)
    p.add_argument("--lora-alpha", type=int, default=d.lora_alpha)
    p.add_argument(
        "--noise-offset", dest="offset_noise", type=float, default=d.offset_noise, help="offset-noise γ (paper: 0.2)"
    )
    p.add_argument("--snr-gamma", type=float, default=d.snr_gamma, help="Min-SNR γ (paper: 5; 0 = plain MSE)")
    p.add_argument("--mixed-precision", default=d.mixed_precision, choices=common.MIXED_PRECISION)
    p.add_argument(
        "--no-gradient-checkpointing",
        dest="gradient_checkpointing",
        action="store_false",
        help="faster, but needs much more memory",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random flips / 90° rotations (default on)",
    )
    p.add_argument("--resume-from", default=None, metavar="PATH|latest", help="a checkpoint folder or 'latest'")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--checkpoints-total-limit", type=int, default=None, help="keep only the newest K checkpoints")
    p.add_argument("--validate-every", type=int, default=d.validate_every, help="0 = only at the end")
    p.add_argument("--validation-count", type=int, default=d.validation_count, help="val patches to generate")
    p.add_argument("--validation-steps", type=int, default=d.validation_steps, help="sampler steps for validation")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="stop (with a checkpoint) after this many steps in this session: for time-limited jobs",
    )
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes")
    for old, new in (("--lr", "--learning-rate"), ("--offset-noise", "--noise-offset")):
        deprecated_alias(p, old, new)


def config_from_args(args: argparse.Namespace) -> GeoTrainConfig:
    keys = GeoTrainConfig.__dataclass_fields__
    config = GeoTrainConfig(**{k: v for k, v in vars(args).items() if k in keys})
    config.mixed_precision = common.resolve_mixed_precision(config.mixed_precision)  # the run records the choice
    return config


# -- the trainer ------------------------------------------------------------------------------------------
class GeoTrainer(TrainLoop):
    """``GeoTrainer(config).run()``; :meth:`setup` and :meth:`train` separately for finer control."""

    name = "geo"

    def __init__(self, config: GeoTrainConfig) -> None:
        from sarviz.calibration import Calibration
        from sarviz.generators.condition import ConditionError, ConditionSpec
        from sarviz.training.data import open_patch_dataset

        c = self.config = config
        common.check_resolution(c.resolution)
        for name in ("max_steps", "batch_size", "grad_accum", "checkpoint_every", "lora_rank"):
            if getattr(c, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(c, name)}")
        self.base = common.check_base(c.base, allow_pickle=c.allow_pickle)
        if c.vae:
            common.check_weights(c.vae, c.allow_pickle, f"--vae {c.vae}")
        self.info = open_patch_dataset(c.data)
        self.calibration = Calibration.from_dict(c.calibration) if c.calibration else self.info.calibration
        try:
            self.spec = ConditionSpec.from_dict(c.preprocessing, size=c.resolution)
        except ConditionError as exc:
            raise TrainError(str(exc)) from None
        if not self.info.split("train"):
            raise TrainError(f"dataset {c.data} has no 'train' patches")
        self.work, self.max_steps = c.out, c.max_steps

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch
        from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        from transformers import CLIPTextModel, CLIPTokenizer

        from sarviz.generators.diffusion import REFERENCE_SAMPLER, load_weights_file
        from sarviz.training.data import collate, geo_training_dataset

        c = self.config
        self.start_accelerator(
            lambda ckpt: common.read_json(ckpt / TRAIN_META, "sarviz geo checkpoint", RUN_FORMAT)["step"]
        )
        acc = self.accelerator
        wdtype = common.weight_dtype(acc)
        base = str(self.base)
        st = {} if c.allow_pickle else {"use_safetensors": True}  # the generators' rule (common.check_weights)
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
            self.text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **st)
            self.vae = (
                AutoencoderKL.from_pretrained(c.vae, **st)
                if c.vae
                else AutoencoderKL.from_pretrained(base, subfolder="vae", **st)
            )
            unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", **st)
            self.noise_scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
        except (OSError, ValueError) as exc:
            raise TrainError(f"cannot load the base model from {base}: {str(exc).splitlines()[0]}") from None
        common.fix_tokenizer_length(self.tokenizer, self.text_encoder)
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        latent = c.resolution // self.vae_scale
        unet_factor = 2 ** (len(unet.config.block_out_channels) - 1)
        if latent % unet_factor:
            raise TrainError(
                f"--resolution {c.resolution}: the latents ({latent} px) must divide by {unet_factor} "
                f"for this UNet; use a multiple of {self.vae_scale * unet_factor}"
            )
        n_cond = int(math.log2(self.vae_scale)) + 1
        torch.manual_seed(common.seed_for(c.seed, -1))  # the new weights (condition embedding, LoRA A)
        if self.resume is not None:
            controlnet = ControlNetModel.from_pretrained(str(self.resume))
        else:
            controlnet = ControlNetModel.from_unet(
                unet,
                conditioning_channels=self.spec.channels,
                conditioning_embedding_out_channels=DEFAULT_COND_EMBEDDING[:n_cond],
            )
        self.vae.requires_grad_(False).to(
            acc.device, dtype=torch.bfloat16 if wdtype == torch.bfloat16 else torch.float32
        )
        self.text_encoder.requires_grad_(False).to(acc.device, dtype=wdtype)
        unet.requires_grad_(False).to(acc.device, dtype=common.frozen_unet_dtype(acc))
        if c.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            controlnet.enable_gradient_checkpointing()
        self.lora_config = LoraConfig(
            r=c.lora_rank,
            lora_alpha=c.lora_alpha,
            lora_dropout=c.lora_dropout,
            bias="none",
            target_modules=list(LORA_TARGETS),
        )
        unet = get_peft_model(unet, self.lora_config)
        if self.resume is not None:
            state = load_weights_file(ControlNetCheckpoint.lora_weights_file(self.resume))
            result = set_peft_model_state_dict(unet, state)
            if result.unexpected_keys:
                raise TrainError(f"{self.resume}/unet_lora does not fit this base UNet / --lora-rank")
        cast_training_params(unet, dtype=torch.float32)
        controlnet.train()
        unet.train()
        params = [p for p in list(controlnet.parameters()) + list(unet.parameters()) if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.lr, betas=(0.9, 0.999), weight_decay=c.adam_weight_decay, eps=1e-8)
        lr_scheduler = common.cosine_scheduler(optimizer, c.lr_warmup_steps, c.max_steps, acc.num_processes)
        common.drop_model_weights_hooks(acc)
        self.controlnet, self.unet, self.optimizer, self.lr_scheduler = acc.prepare(
            controlnet, unet, optimizer, lr_scheduler
        )
        if self.resume is not None:
            acc.load_state(str(self.resume / ACCELERATE_STATE))
        self.prompt = c.prompt or REFERENCE_SAMPLER["prompt"]
        with torch.no_grad():
            ids = self.tokenizer(
                [self.prompt],
                padding="max_length",
                truncation=True,
                return_tensors="pt",
                max_length=self.text_encoder.config.max_position_embeddings,
            ).input_ids.to(acc.device)
            self.prompt_embeds = self.text_encoder(ids)[0].to(wdtype)
        self.dataset = geo_training_dataset(
            self.info, "train", c.resolution, self.spec, self.calibration, augment=c.augment, seed=c.seed
        )
        self.sampler = common.ShardedEpochSampler(
            len(self.dataset),
            c.batch_size,
            c.grad_accum,
            acc.num_processes,
            acc.process_index,
            c.seed,
            start_step=self.start_step,
        )
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=c.batch_size, sampler=self.sampler, collate_fn=collate, num_workers=c.num_workers
        )
        self.start_log("geo", calibration=self.calibration.to_dict(), preprocessing=self.spec.to_dict())

    # -- the loop's parts -----------------------------------------------------------------------------
    def trained_modules(self) -> list:
        return [self.controlnet, self.unet]

    def describe(self) -> str:
        c = self.config
        return (
            f"batch {c.batch_size} × {c.resolution}² px, mixed precision {c.mixed_precision}, "
            f"gradient checkpointing {'on' if c.gradient_checkpointing else 'off'}"
        )

    def micro_loss(self, batch):
        import torch

        acc = self.accelerator
        vae = self.vae
        pixels = batch["pixel_values"].to(acc.device, dtype=vae.dtype)
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
        latents = latents.float()
        noise = common.diffusion_noise(latents, self.config.offset_noise)
        bsz = latents.shape[0]
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (bsz,), device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        ehs = self.prompt_embeds.expand(bsz, -1, -1)
        cond = batch["conditioning"].to(acc.device)
        down, mid = self.controlnet(
            noisy, timesteps, encoder_hidden_states=ehs, controlnet_cond=cond, return_dict=False
        )
        pred = self.unet(
            noisy,
            timesteps,
            encoder_hidden_states=ehs,
            down_block_additional_residuals=list(down),
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]
        return common.diffusion_loss(
            pred, latents, noise, timesteps, self.noise_scheduler, self.config.snr_gamma or None
        )

    def on_step_end(self, step: int) -> None:
        c = self.config
        if (c.validate_every and step % c.validate_every == 0) or step == c.max_steps:
            self.validate(step)

    # -- checkpoints (sarviz.formats.controlnet) ------------------------------------------------------------------------
    def write_components(self, folder: Path, step: int) -> None:
        acc = self.accelerator
        ControlNetCheckpoint(folder, self.train_meta(step)).save(
            controlnet=acc.unwrap_model(self.controlnet), unet_lora=acc.unwrap_model(self.unet)
        )

    def train_meta(self, step: int) -> dict[str, Any]:
        c = self.config
        return {
            "format": RUN_FORMAT,
            "step": step,
            "calibration": self.calibration.to_dict(),
            "preprocessing": self.spec.to_dict(),
            "base": str(self.base.resolve()),
            "vae": c.vae,
            "prompt": self.prompt,
            "dataset": str(c.data.resolve()),
            "embedding_source": self.info.meta.get("embedding_source"),
            "recipe": {
                "seed_paper": "000 HuiYanEarth-SAR",
                "controlnet_init": "from_unet",
                "conditioning_channels": self.spec.channels,
                "lora": {
                    "r": c.lora_rank,
                    "alpha": c.lora_alpha,
                    "dropout": c.lora_dropout,
                    "target_modules": list(LORA_TARGETS),
                },
                "offset_noise": c.offset_noise,
                "snr_gamma": c.snr_gamma,
                "optimizer": "AdamW",
                "lr": c.lr,
                "lr_schedule": "cosine",
                "lr_warmup_steps": c.lr_warmup_steps,
                "weight_decay": c.adam_weight_decay,
                "max_grad_norm": c.max_grad_norm,
                "max_steps": c.max_steps,
                "resolution": c.resolution,
                "batch_size": c.batch_size,
                "grad_accum": c.grad_accum,
                "num_processes": self.accelerator.num_processes,
                "mixed_precision": c.mixed_precision,
                "gradient_checkpointing": c.gradient_checkpointing,
                "augment": "flip+rot90" if c.augment else "none",
                "seed": c.seed,
                "target": "calibration.to_signed: R=VV, G=VH, B=VV",
                "prediction_type": self.noise_scheduler.config.prediction_type,
            },
        }

    # -- validation -----------------------------------------------------------------------------------
    def validate(self, step: int) -> None:
        from sarviz.training.validation import validate_geo

        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process and self.config.validation_count > 0 and self.info.split("val"):
            validate_geo(self, step)
        acc.wait_for_everyone()


def train_geo(config: GeoTrainConfig) -> Path | None:
    """Train (or resume) a geo run; returns the last checkpoint folder."""
    return GeoTrainer(config).run()


def main(argv: list[str] | None = None) -> int:
    """``python -m sarviz.training.geo`` / ``accelerate launch -m sarviz.training.geo``."""
    from sarviz.training.loop import command_main

    return command_main("geo", __doc__, add_arguments, config_from_args, train_geo, argv)


if __name__ == "__main__":
    sys.exit(main())
