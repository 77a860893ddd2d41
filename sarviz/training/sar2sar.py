"""``sarviz train sar2sar``: a ControlNet whose condition is the up-sampled coarser SAR (seed 002).

Recipe (seed 002 names only "spatial conditioning"/ControlNet on SDXL; every choice marked ‡ is ours):

* base SD 1.5 or SDXL (from ``model_index.json``), optionally a ``sarviz train text`` run on it
  (``--text-weights``: its ``<SAR>`` token, text-encoder LoRA and UNet, merged and frozen);
* ControlNet initialised from the (text-run) UNet (``ControlNetModel.from_unet``) ‡, 3-channel
  condition = the up-sampled coarser A/(μ+3σ) amplitude replicated (diffusers' [0, 1] convention);
  only the ControlNet trains ‡ (the UNet stays what the text run learned);
* target: the finer A/(μ+3σ) amplitude (grey, replicated to RGB, [-1, 1]); ε-prediction MSE with
  noise offset 0.035 (seed 001's) ‡; AdamW lr 1e-5 ‡, cosine schedule, clip 1.0; captions of the
  pairs dataset as the text condition;
* the shared loop (:class:`sarviz.training.loop.TrainLoop`): accelerate, resumable checkpoints
  ``RUN/checkpoint-N/`` (``controlnet/`` + ``sarviz_sar2sar_model.json`` + ``accelerate_state/``),
  the final model in ``RUN/``; at the end (and every ``--validate-every``) the val pairs are rendered
  and the consistency score and ENL ratio logged to ``validation.csv``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarviz.cli_args import deprecated_alias
from sarviz.datasets.sar2sar_pairs import PairsTorchDataset  # noqa: F401 - re-exported (it lives there)
from sarviz.errors import SarvizError
from sarviz.formats.training_run import ACCELERATE_STATE
from sarviz.training import common
from sarviz.training.common import TrainError
from sarviz.training.loop import TrainLoop
from sarviz.training.validation import write_validation_rows


@dataclass
class Sar2SarTrainConfig:
    data: Path
    base: Path
    out: Path
    text_weights: Path | None = None
    resolution: int | None = None  # default: the pairs' chip size
    batch_size: int = 2
    grad_accum: int = 1
    lr: float = 1e-5
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    noise_offset: float = 0.035
    snr_gamma: float = 0.0
    max_steps: int | None = None
    epochs: int | None = None  # default 8
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = True
    random_flip: bool = False
    resume_from: str | None = None
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = 3
    validate_every: int = 0
    validation_count: int = 2
    validation_steps: int = 10
    seed: int = 0
    stop_after_steps: int | None = None
    log_every: int = 10
    num_workers: int = 0

    def __post_init__(self) -> None:
        self.data, self.base, self.out = Path(self.data), Path(self.base), Path(self.out)
        self.text_weights = Path(self.text_weights) if self.text_weights else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Sar2SarTrainConfig(data=Path("."), base=Path("."), out=Path("."))
    p.add_argument("--data", required=True, metavar="PAIRS", help="pairs folder from `sarviz dataset pairs`")
    p.add_argument("--base", required=True, metavar="BASE_DIR", help="local SD 1.5 or SDXL diffusers folder")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument(
        "--text-weights",
        default=None,
        metavar="TEXT_RUN",
        help="a `sarviz train text` run on the same base (its <SAR> token, LoRAs and UNet)",
    )
    p.add_argument("--resolution", type=int, default=None, help="training size (default: the pairs' chip size)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--grad-accum", type=int, default=d.grad_accum)
    p.add_argument(
        "--learning-rate",
        dest="lr",
        type=float,
        default=d.lr,
        help="AdamW learning rate of the ControlNet (cosine schedule)",
    )
    p.add_argument("--lr-warmup-steps", type=int, default=d.lr_warmup_steps)
    p.add_argument("--noise-offset", type=float, default=d.noise_offset)
    p.add_argument("--snr-gamma", type=float, default=d.snr_gamma, help="Min-SNR γ (0 = plain MSE)")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: --epochs over the data)")
    p.add_argument("--epochs", type=int, default=None, help="default 8")
    p.add_argument("--mixed-precision", default=d.mixed_precision, choices=common.MIXED_PRECISION)
    p.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    p.add_argument(
        "--augment",
        dest="random_flip",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="random horizontal flips (default off: a flip mirrors the look geometry)",
    )
    p.add_argument("--resume-from", default=None, metavar="PATH|latest")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--checkpoints-total-limit", type=int, default=d.checkpoints_total_limit)
    p.add_argument("--validate-every", type=int, default=d.validate_every, help="0 = only at the end")
    p.add_argument("--validation-count", type=int, default=d.validation_count, help="val pairs rendered (0 = none)")
    p.add_argument("--validation-steps", type=int, default=d.validation_steps)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--stop-after-steps", type=int, default=None)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--num-workers", type=int, default=0)
    for old, new in (("--lr", "--learning-rate"), ("--random-flip", "--augment")):
        deprecated_alias(p, old, new)


def config_from_args(args: argparse.Namespace) -> Sar2SarTrainConfig:
    keys = Sar2SarTrainConfig.__dataclass_fields__
    config = Sar2SarTrainConfig(**{k: v for k, v in vars(args).items() if k in keys})
    config.mixed_precision = common.resolve_mixed_precision(config.mixed_precision)
    return config


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    return {
        "pixel_values": torch.stack([i["pixel_values"] for i in items]),
        "conditioning": torch.stack([i["conditioning"] for i in items]),
        "text": [i["text"] for i in items],
    }


VALIDATION_FIELDS = ("step", "id", "pol", "consistency_db", "enl_ratio")


class Sar2SarTrainer(TrainLoop):
    name = "sar2sar"

    def __init__(self, config: Sar2SarTrainConfig) -> None:
        from sarviz.formats.sar2sar import PairsDataset
        from sarviz.generators.sar2sar import base_kind

        c = self.config = config
        try:
            self.pairs = PairsDataset.open(c.data)
            common.check_base(c.base, ("unet", "vae", "text_encoder", "tokenizer", "scheduler"))
            self.kind = base_kind(c.base)
        except SarvizError as exc:  # a missing/foreign pairs dataset or base model: one line
            raise TrainError(str(exc)) from None
        if not self.pairs.rows("train"):
            raise TrainError(f"pairs dataset {c.data} has no 'train' pairs")
        self.resolution = common.check_resolution(c.resolution or int(self.pairs.info["options"]["size"]))
        for name in ("batch_size", "grad_accum", "checkpoint_every"):
            if getattr(c, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be at least 1")
        self.work = c.out
        self.accelerator = None

    def setup(self) -> None:
        import torch
        from diffusers import ControlNetModel, DDPMScheduler

        from sarviz.formats.sar2sar import Sar2SarRun
        from sarviz.generators.sar2sar import _model_multiple, load_components

        c = self.config
        self.start_accelerator(Sar2SarRun.read_step)
        acc = self.accelerator
        try:
            comp = self.comp = load_components(c.base, c.text_weights, "cpu")
        except SarvizError as exc:
            raise TrainError(str(exc)) from None
        multiple = _model_multiple(comp)
        if self.resolution % multiple:
            raise TrainError(f"--resolution {self.resolution}: this base needs a multiple of {multiple} px")
        self.noise_scheduler = DDPMScheduler.from_config(comp.scheduler_config)
        torch.manual_seed(common.seed_for(c.seed, -1))
        if self.resume is not None:
            controlnet = ControlNetModel.from_pretrained(str(Sar2SarRun.controlnet_dir_of(self.resume)))
        else:
            n_cond = len(comp.vae.config.block_out_channels)
            controlnet = ControlNetModel.from_unet(
                comp.unet, conditioning_embedding_out_channels=(16, 32, 96, 256)[:n_cond]
            )
        comp.vae.requires_grad_(False).to(acc.device, dtype=torch.float32)
        comp.unet.requires_grad_(False).to(acc.device, dtype=common.frozen_unet_dtype(acc))
        for enc in comp.text_encoders:  # float32: run once per micro-batch, cheap, and no dtype mixing
            enc.requires_grad_(False).to(acc.device, dtype=torch.float32)
        if c.gradient_checkpointing:
            controlnet.enable_gradient_checkpointing()
        controlnet.train()
        optimizer = torch.optim.AdamW(
            [p for p in controlnet.parameters() if p.requires_grad],
            lr=c.lr,
            betas=(0.9, 0.999),
            weight_decay=c.adam_weight_decay,
            eps=1e-8,
        )
        self.dataset = PairsTorchDataset(self.pairs, "train", self.resolution, c.random_flip, c.seed)
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
        self.controlnet, self.optimizer, self.lr_scheduler = acc.prepare(controlnet, optimizer, lr_scheduler)
        if self.resume is not None:
            acc.load_state(str(self.resume / ACCELERATE_STATE))
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=c.batch_size, sampler=self.sampler, collate_fn=collate, num_workers=c.num_workers
        )
        self.start_log("sar2sar", base_kind=self.kind, resolution=self.resolution)

    def trained_modules(self) -> list:
        return [self.controlnet]

    def describe(self) -> str:
        c = self.config
        return f"batch {c.batch_size} × {self.resolution}² px, {self.kind} ControlNet, {c.mixed_precision}"

    def micro_loss(self, batch):
        import torch

        from sarviz.generators.sar2sar import encode_prompt

        c, comp, acc = self.config, self.comp, self.accelerator
        pixels = batch["pixel_values"].to(acc.device)
        with torch.no_grad():
            latents = comp.vae.encode(pixels).latent_dist.sample() * comp.vae.config.scaling_factor
            ehs, added = encode_prompt(comp, batch["text"], acc.device, self.resolution)
        latents = latents.float()
        noise = common.diffusion_noise(latents, c.noise_offset)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device
        )
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        kw = {"added_cond_kwargs": added} if added is not None else {}
        down, mid = self.controlnet(
            noisy,
            timesteps,
            encoder_hidden_states=ehs,
            controlnet_cond=batch["conditioning"].to(acc.device),
            return_dict=False,
            **kw,
        )
        pred = comp.unet(
            noisy.to(comp.unet.dtype),
            timesteps,
            encoder_hidden_states=ehs.to(comp.unet.dtype),
            down_block_additional_residuals=[d.to(comp.unet.dtype) for d in down],
            mid_block_additional_residual=mid.to(comp.unet.dtype),
            return_dict=False,
            **kw,
        )[0]
        return common.diffusion_loss(pred.float(), latents, noise, timesteps, self.noise_scheduler, c.snr_gamma or None)

    def on_step_end(self, step: int) -> None:
        c = self.config
        if (c.validate_every and step % c.validate_every == 0) or step == self.max_steps:
            self.validate(step)

    def finish(self, step: int) -> Path | None:
        return self.save_checkpoint(step, final_to=self.config.out)

    def model_meta(self, step: int) -> dict[str, Any]:
        c, info = self.config, self.pairs.info
        return {
            "step": step,
            "base": str(c.base.resolve()),
            "base_kind": self.kind,
            "text_weights": str(c.text_weights.resolve()) if c.text_weights else None,
            "token": self.comp.token,
            "resolution": self.resolution,
            "dataset": str(c.data.resolve()),
            "pairs": {
                "factor": info["options"]["factor"],
                "looks": info["options"]["looks"],
                "source_spacing": info.get("source_spacing"),
                "teaches": info.get("teaches"),
                "mode": info.get("mode"),
            },
            "consistency_calibration": info.get("consistency_calibration"),
            "conditioning": "up-sampled coarser A/(μ+3σ) amplitude, grey replicated to 3 channels, [0, 1]",
            "target": "finer A/(μ+3σ) amplitude, grey replicated to RGB, [-1, 1]",
            "recipe": {
                "seed_paper": "002 (pipeline of seed 001 §6); choices are sarviz's",
                "controlnet_init": "from_unet",
                "trained": "ControlNet only",
                "lr": c.lr,
                "lr_schedule": "cosine",
                "noise_offset": c.noise_offset,
                "snr_gamma": c.snr_gamma,
                "max_steps": self.max_steps,
                "batch_size": c.batch_size,
                "grad_accum": c.grad_accum,
                "mixed_precision": c.mixed_precision,
                "seed": c.seed,
                "prediction_type": self.noise_scheduler.config.prediction_type,
            },
        }

    def write_components(self, folder: Path, step: int) -> None:
        from sarviz.formats.sar2sar import Sar2SarRun

        self.accelerator.unwrap_model(self.controlnet).save_pretrained(
            str(Sar2SarRun.controlnet_dir_of(folder)), safe_serialization=True
        )
        Sar2SarRun.write_meta(folder, self.model_meta(step))

    def validate(self, step: int) -> None:
        """Render up to ``validation_count`` val pairs in one tile; consistency and ENL ratio vs the target."""
        import torch

        from sarviz.amplitude import AmplitudeStats, denormalise_amplitude
        from sarviz.generators.sar2sar import (
            FLOOR_DB,
            _model_multiple,
            denoise_canvas,
            plan_tiles,
        )
        from sarviz.metrics import sar
        from sarviz.sar2sar.consistency import consistency
        from sarviz.sar2sar.resample import resample_db

        c, acc = self.config, self.accelerator
        rows = self.pairs.rows("val")[: c.validation_count] or self.pairs.rows("train")[: c.validation_count]
        if not acc.is_main_process or not rows or c.validation_count < 1:
            return
        cn = acc.unwrap_model(self.controlnet)
        cn.eval()
        ds = PairsTorchDataset(self.pairs, "val" if self.pairs.rows("val") else "train", self.resolution, False, 0)
        plan = plan_tiles((self.resolution, self.resolution), self.resolution, 0, _model_multiple(self.comp))
        out_rows = []
        for i, row in enumerate(rows):
            item = ds[i]
            cond = item["conditioning"][0].numpy()
            target = ((item["pixel_values"][0] + 1) / 2).numpy()
            with torch.no_grad(), acc.autocast():
                unit = denoise_canvas(
                    self.comp,
                    cn,
                    cond,
                    cond,
                    row.get("text", ""),
                    "",
                    c.validation_steps,
                    0.6,
                    1.0,
                    1.0,
                    plan,
                    c.seed,
                    str(acc.device),
                )
            stats = AmplitudeStats.from_dict(row["amplitude_stats"])
            gen_db, tgt_db = (denormalise_amplitude(a, stats, floor_db=FLOOR_DB) for a in (unit, target))
            f = float(self.pairs.info["options"]["factor"])
            coarse = resample_db(
                denormalise_amplitude(cond, stats, floor_db=FLOOR_DB), tuple(max(1, round(n / f)) for n in unit.shape)
            )
            score = consistency(coarse, gen_db, block=max(2, min(8, coarse.shape[0] // 4))).score_db
            try:
                enl_ratio = sar.enl(gen_db, window=8).enl / sar.enl(tgt_db, window=8).enl
            except sar.MetricError:
                enl_ratio = float("nan")
            out_rows.append(
                {
                    "step": step,
                    "id": row["id"],
                    "pol": row["pol"],
                    "consistency_db": round(score, 4),
                    "enl_ratio": round(enl_ratio, 4),
                }
            )
        cn.train()
        # RUN/validation.csv, rewritten atomically; a resumed run replaces the rows from this step on
        write_validation_rows(c.out, step, out_rows, VALIDATION_FIELDS)


def train_sar2sar(config: Sar2SarTrainConfig) -> Path | None:
    return Sar2SarTrainer(config).run()


def main(argv: list[str] | None = None) -> int:
    from sarviz.training.loop import command_main

    return command_main("sar2sar", __doc__, add_arguments, config_from_args, train_sar2sar, argv)


if __name__ == "__main__":
    sys.exit(main())
