"""The text-to-SAR trainer (seed 001, ONERA): SD 1.5 or SDXL, full UNet + text-encoder LoRA + a learned token.

Recipe (paper 001, its best configuration "soleil-up-7"; deviations marked ‡):

* the UNet fully fine-tuned (lr 5e-5) — or, with ``--unet lora``, a LoRA on its attention
  projections (to_q, to_k, to_v, to_out.0; the paper's LoRA runs used r 256, α 128);
* LoRA r 8, α 4 on every text encoder's q/k/v/out projections (lr 4e-5) — SDXL's two
  encoders each get one;
* a learned token (default ``<SAR>``) added to every tokenizer; its embedding row is trained
  (lr of the text encoders ‡, the paper gives none) and initialised from the word "radar" ‡;
  every caption from ``sarviz dataset caption`` starts with it;
* noise offset 0.035 on the ε-prediction MSE; AdamW with a cosine schedule ‡ (the paper does
  not name its schedule); SDXL's added conditions (pooled text embedding of encoder 2 and
  the time ids original size / crop (0, 0) / target size) as in diffusers' SDXL scripts;
* ``--stage vae-decoder`` — the paper's refinement: the VAE decoder trained together with the
  UNet and the text-encoder LoRA for one epoch, timesteps restricted to the lowest 15 % of the
  schedule, loss = diffusion loss + λ_KL · KL(P_real ‖ P_gen) between the histograms of the
  target image and the image decoded from the predicted clean latent (λ_KL = 0.1 ‡: the
  paper gives no value; soft histograms make the term differentiable). ``--kl-space`` says
  of what (recorded in the run's recipe): ``calibrated`` ‡ (default) — the [−1, 1] pixel values
  the VAE sees (the calibrated dB mapping, *not* amplitude); ``amplitude`` — the paper's
  amplitude A/(μ+3σ) of each image (:func:`sarviz.amplitude.normalise_amplitude_rows`, the one
  implementation), saturated pixels left out, as in seed 001's KL metric.

Output (sarviz.formats.text_run): ``RUN/`` (final) and ``RUN/checkpoint-N/`` (+ ``accelerate_state/``) with
``sarviz_text_model.json``, ``unet/`` or ``unet_lora/``, ``text_encoder_lora/``
(``text_encoder_2_lora/``), ``learned_embeds.safetensors`` and, after the refinement, ``vae/``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarviz.cli_args import deprecated_alias
from sarviz.formats.text_run import EMBEDS_FILE, MODEL_FILE, UNET_DIR, UNET_LORA_DIR, VAE_DIR, TextRun
from sarviz.formats.text_run import FORMAT as MODEL_FORMAT
from sarviz.formats.text_run import te_lora_dir as _te_lora_dir
from sarviz.formats.training_run import ACCELERATE_STATE, REFINE_DIR
from sarviz.training import common
from sarviz.training.common import TrainError
from sarviz.training.loop import TrainLoop

TE_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
STAGES = ("unet", "vae-decoder")
KL_BINS = 64


@dataclass
class TextTrainConfig:
    data: Path
    base: Path
    out: Path
    resolution: int | None = None  # default: the base's native size (512 SD 1.5, 1024 SDXL)
    batch_size: int = 2
    grad_accum: int = 8  # effective batch 16, the paper's soleil-up-7
    unet: str = "full"
    unet_lora_rank: int = 256
    unet_lora_alpha: int = 128
    te_lora_rank: int = 8
    te_lora_alpha: int = 4
    token: str = "<SAR>"
    initializer: str = "radar"
    noise_offset: float = 0.035
    snr_gamma: float = 0.0  # the paper uses the plain loss
    lr_unet: float = 5e-5
    lr_te: float = 4e-5
    lr_vae: float = 1e-5
    kl_weight: float = 0.1
    kl_space: str = "calibrated"  # see KL_SPACES
    refine_fraction: float = 0.15
    max_steps: int | None = None
    epochs: int | None = None  # default 8 (the paper compares runs at epoch 8); 1 for the refinement
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"  # the inference dtype choice of this machine
    gradient_checkpointing: bool = True
    random_flip: bool = False
    resume_from: str | None = None
    init_from: Path | None = None
    stage: str = "unet"
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = 3
    seed: int = 0
    stop_after_steps: int | None = None
    log_every: int = 10
    num_workers: int = 0
    # SD3 / SD3.5 bases only (seed 003 stage 1, sarviz.training.text_sd3); None → that recipe's defaults
    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_targets: str | None = None
    lr_lora: float | None = None
    #: load pickle (.bin) weights of the base too (default: safetensors only, as the generators)
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        self.data, self.base, self.out = Path(self.data), Path(self.base), Path(self.out)
        self.init_from = Path(self.init_from) if self.init_from else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TextTrainConfig(data=Path("."), base=Path("."), out=Path("."))
    p.add_argument("--data", required=True, metavar="CAPTIONED", help="captioned folder from `sarviz dataset caption`")
    p.add_argument("--base", required=True, metavar="BASE_DIR", help="local SD 1.5 or SDXL diffusers folder")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load pickle (.bin) base weights: they can run code when loaded (default: safetensors only)",
    )
    p.add_argument("--resolution", type=int, default=None, help="training size (default: the base's native size)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--grad-accum", type=int, default=d.grad_accum)
    p.add_argument("--unet", choices=("full", "lora"), default=d.unet, help="full fine-tuning (paper's best) or LoRA")
    # one denoiser LoRA knob: the UNet LoRA (--unet lora) or the SD3 MM-DiT LoRA, each with its own default
    p.add_argument(
        "--lora-rank",
        type=int,
        default=None,
        help=f"LoRA rank of the denoiser (UNet: default {d.unet_lora_rank}; SD3: default 32)",
    )
    p.add_argument(
        "--lora-alpha",
        type=int,
        default=None,
        help=f"LoRA α of the denoiser (UNet: default {d.unet_lora_alpha}; SD3: default 16)",
    )
    p.add_argument("--te-lora-rank", type=int, default=d.te_lora_rank)
    p.add_argument("--te-lora-alpha", type=int, default=d.te_lora_alpha)
    p.add_argument("--token", default=d.token, help="the learned token every caption starts with")
    p.add_argument("--initializer", default=d.initializer, help="word whose embedding starts the token's")
    p.add_argument("--noise-offset", type=float, default=d.noise_offset)
    p.add_argument("--snr-gamma", type=float, default=d.snr_gamma, help="Min-SNR γ (0 = off, the paper's loss)")
    p.add_argument(
        "--learning-rate",
        dest="lr_unet",
        type=float,
        default=None,
        help=f"learning rate of the denoiser (UNet: default {d.lr_unet}; SD3 LoRA: default 1e-4)",
    )
    p.add_argument(
        "--te-learning-rate",
        dest="lr_te",
        type=float,
        default=d.lr_te,
        help="text-encoder LoRA and token learning rate",
    )
    p.add_argument(
        "--vae-learning-rate",
        dest="lr_vae",
        type=float,
        default=d.lr_vae,
        help="VAE decoder learning rate (--stage vae-decoder)",
    )
    p.add_argument("--kl-weight", type=float, default=d.kl_weight, help="λ_KL of the refinement (paper: unstated)")
    p.add_argument(
        "--kl-space",
        default=d.kl_space,
        choices=sorted(KL_SPACES),
        help="what the refinement's KL compares: 'calibrated' (default) the [−1, 1] pixels of the "
        "calibrated dB mapping; 'amplitude' seed 001's amplitude/(μ+3σ) per image",
    )
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: --epochs over the data)")
    p.add_argument("--epochs", type=int, default=None, help="default 8 (stage unet) or 1 (stage vae-decoder)")
    p.add_argument("--lr-warmup-steps", type=int, default=d.lr_warmup_steps)
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
    p.add_argument(
        "--stage",
        choices=STAGES,
        default="unet",
        help="unet: the main fine-tuning; vae-decoder: the refinement of a finished run",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="(vae-decoder stage) the finished text run to refine (default: --out)",
    )
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--checkpoints-total-limit", type=int, default=d.checkpoints_total_limit)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--stop-after-steps", type=int, default=None)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--num-workers", type=int, default=0)
    sd3 = p.add_argument_group("SD3 / SD3.5 base (seed 003 stage 1: LoRA on the MM-DiT attention)")
    sd3.add_argument(
        "--lora-targets",
        default=None,
        choices=("qkv", "diffusers", "diffusers+attn2"),
        help="qkv (default, the paper's), diffusers' SD3 set, or that set plus SD3.5's attn2",
    )
    for old, new in (
        ("--unet-lora-rank", "--lora-rank"),
        ("--unet-lora-alpha", "--lora-alpha"),
        ("--lr-unet", "--learning-rate"),
        ("--lr-te", "--te-learning-rate"),
        ("--lr-vae", "--vae-learning-rate"),
        ("--random-flip", "--augment"),
        ("--lr-lora", "--learning-rate"),
    ):
        deprecated_alias(p, old, new)


def config_from_args(args: argparse.Namespace) -> TextTrainConfig:
    keys = TextTrainConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in keys}
    # --lora-rank/--lora-alpha/--learning-rate name the denoiser's knobs for both kinds of run: the UNet
    # fields (unet_lora_*, lr_unet) and the SD3 LoRA fields (lora_*, lr_lora); unset, each keeps its default
    for shared, unet_field in (("lora_rank", "unet_lora_rank"), ("lora_alpha", "unet_lora_alpha")):
        if values.get(shared) is not None:
            values[unet_field] = values[shared]
    if values.get("lr_unet") is None:
        values.pop("lr_unet", None)
    elif "lr_lora" in keys:
        values["lr_lora"] = values["lr_unet"]
    config = TextTrainConfig(**values)
    config.mixed_precision = common.resolve_mixed_precision(config.mixed_precision)  # the run records the choice
    return config


def base_kind(base: Path) -> str:
    """ "sd15" or "sdxl": :func:`sarviz.generators.base_model.base_kind` (the one rule), as a TrainError."""
    from sarviz.errors import GenerationError
    from sarviz.generators.base_model import base_kind as kind_of

    try:
        return kind_of(base, supported=("sd15", "sdxl"))
    except GenerationError as exc:
        raise TrainError(f"{exc}; sarviz train text fine-tunes Stable Diffusion 1.5 or SDXL") from None


#: what the refinement's KL compares (``--kl-space``), as recorded in the run's recipe
KL_SPACES = {
    "calibrated": "soft histograms (64 bins) of the [−1, 1] pixels of the calibrated dB mapping",
    "amplitude": "soft histograms (64 bins) of seed 001's amplitude A/(μ+3σ) of each image and channel, clipped "
    "to [0, 1], saturated pixels left out (sarviz.amplitude)",
}


def soft_histogram(x, bins: int = KL_BINS, lo: float = -1.0, hi: float = 1.0, weights=None):
    """Per-sample differentiable histogram (Gaussian kernels at the bin centres), (B, bins), sums to 1.
    ``weights`` (same shape as ``x``) weigh each value (0 leaves it out)."""
    import torch

    centres = torch.linspace(lo, hi, bins, device=x.device, dtype=torch.float32)
    width = (hi - lo) / (bins - 1)
    v = x.float().flatten(1)[:, :, None]
    w = torch.exp(-0.5 * ((v - centres) / (0.5 * width)) ** 2)
    if weights is not None:
        w = w * weights.float().flatten(1)[:, :, None]
    h = w.sum(dim=1)
    return h / h.sum(dim=1, keepdim=True).clamp_min(1e-12)


def amplitude_kl(real, generated, eps: float = 1e-6, space: str = "calibrated", db_ranges=None):
    """KL(P_real ‖ P_gen) of the two images' histograms, mean over the batch.

    ``space`` "calibrated": of the [−1, 1] pixel values. "amplitude": each (image, channel) is
    mapped back to dB through ``db_ranges`` (one (lo, hi) a channel: the calibration), to
    amplitude 10^(dB/20), normalised by its own μ+3σ and clipped to [0, 1]
    (:func:`sarviz.amplitude.normalise_amplitude_rows`); pixels at 1 (saturated) are left out.
    """
    if space == "calibrated":
        p, q = soft_histogram(real) + eps, soft_histogram(generated) + eps
    elif space == "amplitude":
        p, q = (_normalised_amplitude_histogram(x, db_ranges) + eps for x in (real, generated))
    else:
        raise TrainError(f"--kl-space must be one of {', '.join(sorted(KL_SPACES))}, got {space!r}")
    p, q = p / p.sum(1, keepdim=True), q / q.sum(1, keepdim=True)
    return (p * (p / q).log()).sum(dim=1).mean()


def _normalised_amplitude_histogram(x, db_ranges):
    import torch

    from sarviz.amplitude import normalise_amplitude_rows

    if db_ranges is None or len(db_ranges) != x.shape[1]:
        raise TrainError("the amplitude KL needs one calibration range a channel")
    lo = torch.tensor([r[0] for r in db_ranges], device=x.device, dtype=torch.float32)[None, :, None, None]
    hi = torch.tensor([r[1] for r in db_ranges], device=x.device, dtype=torch.float32)[None, :, None, None]
    db = lo + (x.float().clamp(-1, 1) + 1) / 2 * (hi - lo)
    amplitude = torch.pow(10.0, db / 20.0).flatten(2)  # (B, C, H·W): one row an image and channel
    unit, _ = normalise_amplitude_rows(amplitude)
    keep = (unit < 1.0).float()  # the paper's KL leaves the saturated pixels out
    hist = soft_histogram(unit.flatten(0, 1), lo=0.0, hi=1.0, weights=keep.flatten(0, 1))
    return hist.view(x.shape[0], x.shape[1], -1).mean(1)


class TextTrainer(TrainLoop):
    name = "text"

    def __init__(self, config: TextTrainConfig) -> None:
        from sarviz.training.data import open_captioned

        c = self.config = config
        if c.stage not in STAGES:
            raise TrainError(f"--stage must be one of {', '.join(STAGES)}")
        if c.unet not in ("full", "lora"):
            raise TrainError("--unet must be full or lora")
        if c.resolution is not None:
            common.check_resolution(c.resolution)
        if not c.token or any(ch.isspace() for ch in c.token):
            raise TrainError(f"--token {c.token!r} must be one word without spaces")
        self.kind = base_kind(
            common.check_base(
                c.base, ("unet", "vae", "text_encoder", "tokenizer", "scheduler"), allow_pickle=c.allow_pickle
            )
        )
        if self.kind == "sdxl":
            common.check_base(c.base, ("text_encoder_2", "tokenizer_2"), allow_pickle=c.allow_pickle)
        self.data = open_captioned(c.data)
        if c.kl_space not in KL_SPACES:
            raise TrainError(f"--kl-space must be one of {', '.join(sorted(KL_SPACES))}, got {c.kl_space!r}")
        # the image channels' polarisations (CaptionDataset: "L" = VV thrice, "RGB" = VV, VH, VV)
        pols = ("VV", "VH", "VV") if self.data.info.get("image_mode") == "RGB" else ("VV", "VV", "VV")
        self.kl_db_ranges = [self.data.calibration.range(p) for p in pols]
        token = self.data.info.get("token")
        if token and token != c.token:
            raise TrainError(f"the captions start with {token!r} but --token is {c.token!r}; use --token {token!r}")
        self.init = None
        if c.stage == "vae-decoder":
            self.init = Path(c.init_from or c.out)
            if not (self.init / MODEL_FILE).is_file():
                raise TrainError(
                    f"--stage vae-decoder refines a finished text run, but {self.init} has no "
                    f"{MODEL_FILE}; train with --stage unet first or give --init-from RUN"
                )
        # the refinement keeps its checkpoints and logs apart (its steps count from 0 again);
        # its final model replaces the run's top level
        self.work = c.out if c.stage == "unet" else c.out / REFINE_DIR
        self.accelerator = None

    # -- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig, get_peft_model
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

        from sarviz.training.data import CaptionDataset, collate

        c = self.config
        self.start_accelerator(lambda ckpt: _read_model_meta(ckpt)["step"])
        acc = self.accelerator
        source = self.resume or self.init  # where trained weights come from (None: the base)
        base = str(c.base)
        wdtype = common.weight_dtype(acc)
        n_enc = 2 if self.kind == "sdxl" else 1
        st = {} if c.allow_pickle else {"use_safetensors": True}  # the generators' rule (common.check_weights)
        try:
            self.tokenizers = [
                CLIPTokenizer.from_pretrained(base, subfolder=s) for s in ("tokenizer", "tokenizer_2")[:n_enc]
            ]
            encoders = [CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **st)]
            if n_enc == 2:
                encoders.append(CLIPTextModelWithProjection.from_pretrained(base, subfolder="text_encoder_2", **st))
            if source is not None and (source / UNET_DIR).is_dir():
                unet = UNet2DConditionModel.from_pretrained(str(source / UNET_DIR))  # our own run: safetensors
            else:
                unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", **st)
            if source is not None and (source / VAE_DIR).is_dir():
                self.vae = AutoencoderKL.from_pretrained(str(source / VAE_DIR))
            else:
                self.vae = AutoencoderKL.from_pretrained(base, subfolder="vae", **st)
            self.noise_scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
        except (OSError, ValueError) as exc:
            raise TrainError(f"cannot load the base model from {base}: {str(exc).splitlines()[0]}") from None
        for tok, enc in zip(self.tokenizers, encoders):
            common.fix_tokenizer_length(tok, enc)
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.resolution = c.resolution or int(unet.config.sample_size) * self.vae_scale
        common.check_resolution(self.resolution)
        torch.manual_seed(common.seed_for(c.seed, -1))  # the new weights (LoRA A matrices)
        # -- the learned token, in every tokenizer / encoder -------------------------------------
        self.token_ids = []
        learned = _load_embeds(source, self.kind, c.token) if source is not None else None
        for i, (tok, enc) in enumerate(zip(self.tokenizers, encoders)):
            if tok.add_tokens(c.token) == 0:
                raise TrainError(f"the token {c.token!r} is already in the base's tokenizer; choose a new one")
            tid = tok.convert_tokens_to_ids(c.token)
            enc.resize_token_embeddings(len(tok), mean_resizing=False)  # the new row is set just below
            emb = enc.get_input_embeddings().weight
            with torch.no_grad():
                if learned is not None:
                    emb[tid] = learned[i].to(emb.dtype)
                else:
                    init_ids = tok(c.initializer, add_special_tokens=False).input_ids or [tok.unk_token_id]
                    emb[tid] = emb[init_ids].mean(dim=0)
            self.token_ids.append(tid)
        self.initial_embeds = [
            enc.get_input_embeddings().weight[tid].detach().clone() for enc, tid in zip(encoders, self.token_ids)
        ]
        # -- trainable parts -----------------------------------------------------------------------
        self.vae.requires_grad_(False)
        unet.requires_grad_(c.unet == "full")
        if c.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        if c.unet == "lora":
            unet.to(dtype=common.frozen_unet_dtype(acc))
            unet = get_peft_model(
                unet,
                LoraConfig(
                    r=c.unet_lora_rank,
                    lora_alpha=c.unet_lora_alpha,
                    target_modules=list(UNET_LORA_TARGETS),
                    bias="none",
                ),
            )
            if source is not None:
                _load_adapter(unet, source / UNET_LORA_DIR)
            cast_training_params(unet, dtype=torch.float32)
        te_config = LoraConfig(
            r=c.te_lora_rank, lora_alpha=c.te_lora_alpha, target_modules=list(TE_LORA_TARGETS), bias="none"
        )
        self.encoders = []
        for i, enc in enumerate(encoders):
            enc.requires_grad_(False)
            peft_enc = get_peft_model(enc, te_config)
            if source is not None:
                _load_adapter(peft_enc, source / _te_lora_dir(i))
            peft_enc.get_input_embeddings().weight.requires_grad_(True)
            self.encoders.append(peft_enc)
        # the refinement trains the decoder and decodes outside autocast: the whole VAE stays float32
        half_vae = wdtype == torch.bfloat16 and c.stage != "vae-decoder"
        self.vae.to(acc.device, dtype=torch.bfloat16 if half_vae else torch.float32)
        groups = [{"params": [p for p in unet.parameters() if p.requires_grad], "lr": c.lr_unet}]
        te_params, emb_params = [], []
        for enc in self.encoders:
            emb = enc.get_input_embeddings().weight
            emb_params.append(emb)
            te_params += [p for p in enc.parameters() if p.requires_grad and p is not emb]
        groups.append({"params": te_params, "lr": c.lr_te})
        groups.append({"params": emb_params, "lr": c.lr_te, "weight_decay": 0.0})
        if c.stage == "vae-decoder":
            self.vae.decoder.requires_grad_(True)
            self.vae.decoder.to(dtype=torch.float32)
            groups.append({"params": list(self.vae.decoder.parameters()), "lr": c.lr_vae})
        optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=c.adam_weight_decay, eps=1e-8)
        # -- data ----------------------------------------------------------------------------------------
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
        epochs = c.epochs or (1 if c.stage == "vae-decoder" else 8)
        self.max_steps = c.max_steps or epochs * self.sampler.steps_per_epoch
        lr_scheduler = common.cosine_scheduler(optimizer, c.lr_warmup_steps, self.max_steps, acc.num_processes)
        common.drop_model_weights_hooks(acc)
        prepared = acc.prepare(unet, *self.encoders, optimizer, lr_scheduler)
        self.unet, self.encoders = prepared[0], list(prepared[1 : 1 + n_enc])
        self.optimizer, self.lr_scheduler = prepared[-2], prepared[-1]
        if self.resume is not None:
            acc.load_state(str(self.resume / ACCELERATE_STATE))
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=c.batch_size, sampler=self.sampler, collate_fn=collate, num_workers=c.num_workers
        )
        self.start_log(f"text-{c.stage}", base_kind=self.kind, resolution=self.resolution)

    # -- one micro-batch ---------------------------------------------------------------------------
    def encode_prompts(self, texts: list[str]):
        """(prompt embeddings, SDXL added conditions or None)."""
        import torch

        device = self.accelerator.device
        ids = [
            tok(
                texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
            ).input_ids.to(device)
            for tok in self.tokenizers
        ]
        if self.kind == "sd15":
            return self.encoders[0](input_ids=ids[0])[0], None
        hidden, pooled = [], None
        for enc, i in zip(self.encoders, ids):
            out = enc(input_ids=i, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # encoder 2's projected pooled embedding (text_embeds)
        if pooled is None:  # an SDXL base has two text encoders (base_kind checked its model_index.json)
            raise TrainError("an SDXL base without its text encoders")
        r = self.resolution
        time_ids = torch.tensor([[r, r, 0, 0, r, r]], device=device, dtype=pooled.dtype).repeat(len(texts), 1)
        return torch.cat(hidden, dim=-1), {"text_embeds": pooled, "time_ids": time_ids}

    def micro_loss(self, batch):
        import torch

        c, vae = self.config, self.vae
        pixels = batch["pixel_values"].to(self.accelerator.device)
        with torch.no_grad():
            posterior = vae.encode(pixels.to(vae.dtype)).latent_dist
            latents = (posterior.sample() * vae.config.scaling_factor).float()
        noise = common.diffusion_noise(latents, c.noise_offset)
        T = self.noise_scheduler.config.num_train_timesteps
        hi = max(1, int(round(T * c.refine_fraction))) if c.stage == "vae-decoder" else T
        timesteps = torch.randint(0, hi, (latents.shape[0],), device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        ehs, added = self.encode_prompts(batch["text"])
        pred = self.unet(noisy, timesteps, encoder_hidden_states=ehs, added_cond_kwargs=added, return_dict=False)[0]
        loss = common.diffusion_loss(pred, latents, noise, timesteps, self.noise_scheduler, c.snr_gamma or None)
        if c.stage == "vae-decoder" and c.kl_weight:
            x0 = _predicted_clean(self.noise_scheduler, noisy, pred.float(), timesteps)
            decoded = vae.decode(x0 / vae.config.scaling_factor, return_dict=False)[0].clamp(-1, 1)
            loss = loss + c.kl_weight * amplitude_kl(pixels, decoded, space=c.kl_space, db_ranges=self.kl_db_ranges)
        return loss

    def _restore_other_embeddings(self) -> None:
        """Only the learned token's row may change (textual inversion's rule)."""
        import torch

        with torch.no_grad():
            for enc, tid, orig in zip(self.encoders, self.token_ids, self.original_embeddings):
                w = self.accelerator.unwrap_model(enc).get_input_embeddings().weight
                keep = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
                keep[tid] = False
                w[keep] = orig[keep]

    # -- the loop's parts -----------------------------------------------------------------------------
    def trained_modules(self) -> list:
        return [self.unet, *self.encoders] + ([self.vae] if self.config.stage == "vae-decoder" else [])

    def describe(self) -> str:
        c = self.config
        return f"batch {c.batch_size} × {self.resolution}² px, {self.kind}, UNet {c.unet}, {c.mixed_precision}"

    def before_step(self) -> None:
        acc = self.accelerator
        if self.config.stage == "vae-decoder" and acc.num_processes > 1:
            # the VAE is called through its encode/decode methods, not a DDP forward, so its
            # decoder gradients are averaged here
            for p in self.vae.decoder.parameters():
                if p.grad is not None:
                    p.grad = acc.reduce(p.grad, reduction="mean")

    def after_step(self) -> None:
        self._restore_other_embeddings()

    def train(self) -> Path | None:
        if self.accelerator is None:
            self.setup()
        acc = self.accelerator
        self.original_embeddings = [
            acc.unwrap_model(e).get_input_embeddings().weight.detach().clone() for e in self.encoders
        ]
        return super().train()

    def finish(self, step: int) -> Path | None:
        return self.save_checkpoint(step, final_to=self.config.out)

    # -- saving (sarviz.formats.text_run) --------------------------------------------------------------------------------
    @property
    def saves_vae(self) -> bool:
        """A refined VAE is part of the model: this stage's, or the one a resumed/refined run had."""
        source = self.resume or self.init
        return self.config.stage == "vae-decoder" or (source is not None and (source / VAE_DIR).is_dir())

    def model_meta(self, step: int) -> dict[str, Any]:
        c = self.config
        meta = {
            "format": MODEL_FORMAT,
            "base": str(c.base.resolve()),
            "base_kind": self.kind,
            "token": c.token,
            "unet": c.unet,
            "calibration": self.data.calibration.to_dict(),
            "polarisation": self.data.info.get("polarisation", "VV"),
            "image_mode": self.data.info.get("image_mode", "L"),
            "resolution": self.resolution,
            "step": step,
            "stage": c.stage,
            "recipe": {
                "seed_paper": "001 ONERA text-to-SAR",
                "unet": c.unet,
                "unet_lora": {
                    "r": c.unet_lora_rank,
                    "alpha": c.unet_lora_alpha,
                    "target_modules": list(UNET_LORA_TARGETS),
                }
                if c.unet == "lora"
                else None,
                "te_lora": {"r": c.te_lora_rank, "alpha": c.te_lora_alpha, "target_modules": list(TE_LORA_TARGETS)},
                "token": c.token,
                "initializer": c.initializer,
                "noise_offset": c.noise_offset,
                "snr_gamma": c.snr_gamma,
                "lr_unet": c.lr_unet,
                "lr_te": c.lr_te,
                "lr_schedule": "cosine",
                "max_steps": self.max_steps,
                "batch_size": c.batch_size,
                "grad_accum": c.grad_accum,
                "num_processes": self.accelerator.num_processes,
                "mixed_precision": c.mixed_precision,
                "seed": c.seed,
                "dataset": str(self.data.folder.resolve()),
            },
        }
        if self.saves_vae:
            meta["vae"] = VAE_DIR
        if c.stage == "vae-decoder":
            meta["recipe"].update(
                {
                    "stage": "vae-decoder",
                    "lr_vae": c.lr_vae,
                    "kl_weight": c.kl_weight,
                    "kl_space": c.kl_space,
                    "kl_histograms": KL_SPACES[c.kl_space],
                    "timesteps": f"[0, {c.refine_fraction:.0%} of the schedule)",
                    "refined_from": str(self.init),
                }
            )
        return meta

    def write_components(self, folder: Path, step: int) -> None:
        acc = self.accelerator
        embeds: dict[str, Any] = {}
        encoders = []
        for i, (enc, tid) in enumerate(zip(self.encoders, self.token_ids)):
            enc = acc.unwrap_model(enc)
            encoders.append(enc)
            vec = enc.get_input_embeddings().weight[tid].detach().float().cpu().contiguous()
            if self.kind == "sd15":
                embeds[self.config.token] = vec
            else:
                embeds[("clip_l", "clip_g")[i]] = vec[None].contiguous()
        TextRun(folder, self.model_meta(step)).save(
            unet=acc.unwrap_model(self.unet),
            text_encoders=encoders,
            embeds=embeds,
            vae=self.vae if self.saves_vae else None,
        )


def _predicted_clean(scheduler, noisy, pred, timesteps):
    """x̂₀ from the model output (ε or v prediction) — what the decoder is asked to render."""
    ac = scheduler.alphas_cumprod.to(noisy.device)[timesteps].float().view(-1, 1, 1, 1)
    if scheduler.config.prediction_type == "v_prediction":
        return ac.sqrt() * noisy - (1 - ac).sqrt() * pred
    return (noisy - (1 - ac).sqrt() * pred) / ac.sqrt()


def _read_model_meta(folder: Path) -> dict[str, Any]:
    from sarviz.training.common import read_text_model_meta

    return read_text_model_meta(folder)


def _load_embeds(folder: Path, kind: str, token: str) -> list:
    from safetensors.torch import load_file

    state = load_file(str(folder / EMBEDS_FILE))
    if kind == "sd15":
        if token not in state:
            raise TrainError(f"{folder / EMBEDS_FILE} has no embedding for {token!r}")
        return [state[token].reshape(-1)]
    return [state["clip_l"].reshape(-1), state["clip_g"].reshape(-1)]


def _load_adapter(peft_model, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = TextRun.adapter_file(folder)
    if not path.is_file():
        raise TrainError(f"{path} is missing (the run to resume or refine is incomplete)")
    result = set_peft_model_state_dict(peft_model, load_file(str(path)))
    if result.unexpected_keys:
        raise TrainError(f"{folder} does not fit this base model / LoRA rank")


def train_text(config: TextTrainConfig) -> Path | None:
    """Train (or resume, or refine) a text-to-SAR run; returns the final model folder or last checkpoint."""
    from sarviz.training import text_sd3

    if text_sd3.is_sd3_base(config.base):  # seed 003 stage 1: an SD3/SD3.5 base → MM-DiT LoRA, rectified flow
        return text_sd3.train_text_sd3(config)
    return TextTrainer(config).run()


def main(argv: list[str] | None = None) -> int:
    """``python -m sarviz.training.text`` / ``accelerate launch -m sarviz.training.text``."""
    from sarviz.training.loop import command_main

    return command_main("text", __doc__, add_arguments, config_from_args, train_text, argv)


if __name__ == "__main__":
    sys.exit(main())
