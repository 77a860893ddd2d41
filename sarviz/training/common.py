"""What both trainers share: the accelerator, deterministic data order, the diffusion loss,
atomic checkpoint folders, resume, run logs and the one-line errors.

Determinism (why resume equals an uninterrupted run): nothing depends on RNG state that
carries over from one step to the next. The data order of epoch ``e`` is a permutation
seeded by ``(seed, e)``; the random numbers of optimizer step ``s``, micro-batch ``m``,
process ``r`` (noise, timesteps, VAE sampling, LoRA dropout, augmentation) come from a
generator seeded by ``(seed, s, m, r)``. So a run restarted from ``checkpoint-N`` replays
steps ``N+1 …`` exactly as the uninterrupted run did, given the optimizer and LR-scheduler
state that ``accelerate_state/`` restores.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

from sarviz.atomic import write_json  # noqa: F401 - re-exported (one JSON writer)
from sarviz.errors import TrainError  # noqa: F401 - re-exported (it lives in sarviz.errors)
from sarviz.formats.training_run import (  # noqa: F401 - re-exported (the run folder's names live there)
    ACCELERATE_STATE,
    CHECKPOINT_RE,
    LOGS_DIR,
    LOSS_FIELDS,
    LOSS_LOG,
    RUN_FILE,
    TMP_PREFIX,
    RunLog,
    clean_stale_temp,
    list_checkpoints,
    publish_checkpoint,
    publish_final,
    temp_checkpoint_dir,
)
from sarviz.hashing import seed_for  # noqa: F401 - re-exported (it lives in sarviz.hashing)

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


def resolve_mixed_precision(value: str) -> str:
    """``auto`` → the precision inference uses on this machine (one choice for both).

    CUDA: bf16 where the GPU supports it, else fp16. CPU: bf16 only where the per-machine
    measurement (:func:`sarviz.generators.runtime.dtype_decision`) found bf16 faster than
    float32 (AMX or AVX512-BF16 CPUs), else no mixed precision. Other values pass through.
    """
    if value != "auto":
        return value
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    from sarviz.generators.runtime import dtype_decision

    return "bf16" if dtype_decision("cpu").dtype == "bfloat16" else "no"


# -- small checks ---------------------------------------------------------------------------------
def check_resolution(resolution: int, factor: int = 8) -> int:
    if not isinstance(resolution, int) or resolution < factor or resolution % factor:
        raise TrainError(
            f"--resolution {resolution!r} must be a positive multiple of {factor} "
            "(the VAE downsamples by 8 and the UNet halves the latents again)"
        )
    return resolution


#: file endings of pickle weights (torch.load runs code from them) and of safetensors weights
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def check_weights(folder: str | os.PathLike, allow_pickle: bool = False, what: str = "") -> None:
    """The generators' rule for training bases too: safetensors only, pickle weights (``.bin``,
    ``.pt`` …) only with ``allow_pickle`` (``--allow-pickle``) — a pickle can run code when loaded.
    Raises :class:`TrainError` (one line) before anything is loaded or any run folder is made."""
    folder = Path(folder)
    if allow_pickle or not folder.is_dir():
        return
    files = [p for p in folder.iterdir() if p.is_file()]
    if any(p.name.endswith(".safetensors") for p in files):
        return
    pickles = sorted(p.name for p in files if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise TrainError(
            f"{what or folder}: only pickle weights ({', '.join(pickles[:3])}); training loads "
            "safetensors only unless you opt in with --allow-pickle (a pickle file can run code when "
            "loaded). Prefer converting them to safetensors."
        )


def check_base(
    base: str | os.PathLike,
    needs: tuple[str, ...] = ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    allow_pickle: bool = False,
) -> Path:
    """A local diffusers base folder with the components the trainer loads (weights: see :func:`check_weights`)."""
    base = Path(base).expanduser()
    if not base.is_dir():
        raise TrainError(
            f"base model folder {base} does not exist (give a local diffusers folder, e.g. a "
            "downloaded stable-diffusion-v1-5)"
        )
    missing = [c for c in needs if not (base / c).is_dir()]
    if missing:
        raise TrainError(
            f"base model {base} has no {', '.join(missing)} folder(s); a diffusers base needs "
            f"{', '.join(needs)} (model_index.json layout)"
        )
    for comp in ("unet", "vae"):
        if comp in needs and not (base / comp / "config.json").is_file():
            raise TrainError(f"base model {base}: {comp}/config.json is missing")
    for comp in WEIGHT_COMPONENTS:
        if comp in needs:
            check_weights(base / comp, allow_pickle, f"base model {base}, {comp}")
    return base


# -- data order --------------------------------------------------------------------------------------
class ShardedEpochSampler:
    """Indices of this process's share of each global batch, epoch after epoch, from a position.

    Written by hand (not accelerate's dataloader sharding) because the resume position must
    be exact in optimizer steps: a global batch is ``batch_size × num_processes × grad_accum``
    samples of one seeded permutation per epoch; process ``r`` takes its slice of each
    micro-batch. Yields ``(index, epoch)`` so the dataset can seed its augmentation.
    Incomplete last global batches are dropped (every step sees the same number of samples).
    """

    def __init__(
        self, n: int, batch_size: int, grad_accum: int, num_processes: int, rank: int, seed: int, start_step: int = 0
    ) -> None:
        self.n, self.batch_size, self.grad_accum = n, batch_size, grad_accum
        self.world, self.rank, self.seed, self.start_step = num_processes, rank, seed, start_step
        self.per_step = batch_size * num_processes * grad_accum
        if n < self.per_step:
            raise TrainError(
                f"the training split has {n} patches but one optimizer step needs {self.per_step} "
                f"(batch {batch_size} × {num_processes} processes × grad-accum {grad_accum}); lower "
                "--batch-size/--grad-accum or build a bigger dataset"
            )
        self.steps_per_epoch = n // self.per_step

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, step within epoch) of global optimizer step ``step`` (0-based)."""
        return divmod(step, self.steps_per_epoch)

    def order(self, epoch: int) -> list[int]:
        import torch

        g = torch.Generator().manual_seed(seed_for(self.seed, epoch, 7919))
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, in_epoch = self.position(self.start_step)
        while True:
            order = self.order(epoch)
            for s in range(in_epoch, self.steps_per_epoch):
                block = order[s * self.per_step : (s + 1) * self.per_step]
                for m in range(self.grad_accum):
                    micro = block[m * self.batch_size * self.world : (m + 1) * self.batch_size * self.world]
                    for i in micro[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]:
                        yield i, epoch
            epoch, in_epoch = epoch + 1, 0


# -- the diffusion loss -------------------------------------------------------------------------------
def diffusion_noise(latents, offset_noise: float, generator=None):
    """Gaussian noise plus offset noise (one extra value per sample and channel, scaled by γ)."""
    import torch

    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if offset_noise:
        noise = noise + offset_noise * torch.randn(
            (latents.shape[0], latents.shape[1], 1, 1), generator=generator, device=latents.device, dtype=latents.dtype
        )
    return noise


def diffusion_loss(model_pred, latents, noise, timesteps, scheduler, snr_gamma: float | None):
    """MSE to the scheduler's target; Min-SNR-γ weighting (Hang et al. 2023) when ``snr_gamma``."""
    import torch
    import torch.nn.functional as F
    from diffusers.training_utils import compute_snr

    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise TrainError(f"the base scheduler's prediction_type {kind!r} is not supported (epsilon, v_prediction)")
    if not snr_gamma:
        return F.mse_loss(model_pred.float(), target.float(), reduction="mean")
    snr = compute_snr(scheduler, timesteps)
    weights = torch.stack([snr, snr_gamma * torch.ones_like(snr)], dim=1).min(dim=1)[0]
    weights = weights / (snr + 1) if kind == "v_prediction" else weights / snr
    loss = F.mse_loss(model_pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (loss * weights).mean()


# -- accelerator ----------------------------------------------------------------------------------------
def make_accelerator(out: Path, mixed_precision: str, grad_accum: int, log_with_tensorboard: bool = True):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    if mixed_precision not in MIXED_PRECISION:
        raise TrainError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}")
    config = ProjectConfiguration(project_dir=str(out), logging_dir=str(out / LOGS_DIR))
    log_with = None
    if log_with_tensorboard:
        try:
            import tensorboard  # noqa: F401

            log_with = "tensorboard"
        except ImportError:  # the CSV logs still work
            log_with = None
    from accelerate.state import AcceleratorState, GradientState

    # accelerate keeps its state in process-wide singletons: a second run in the same process (the
    # app, a notebook, tests) with another precision would be refused. The process group
    # (PartialState) is kept, so this is safe under `accelerate launch` too.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    try:
        acc = Accelerator(
            mixed_precision=mixed_precision,
            gradient_accumulation_steps=grad_accum,
            project_config=config,
            log_with=log_with,
        )
    except ValueError as exc:  # e.g. fp16 mixed precision without a GPU
        raise TrainError(f"--mixed-precision {mixed_precision}: {str(exc).splitlines()[0]}") from None
    if mixed_precision == "fp16" and acc.device.type == "cpu":
        raise TrainError(
            "--mixed-precision fp16 needs a GPU (half-precision matmuls are not supported on the CPU); use bf16 or no"
        )
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 and acc.num_processes == 1:
        # `accelerate launch --multi_gpu` on a machine without GPUs starts N processes that each
        # believe they are alone: N copies of the same run racing on the same folder
        raise TrainError(
            f"launched as {world} processes but accelerate sees one (no GPU here?); for several "
            "CPU processes set ACCELERATE_USE_CPU=true (docs/training.md)"
        )
    return acc


def weight_dtype(accelerator):
    """The dtype for frozen models (VAE, text encoder): half precision under mixed precision."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def fix_tokenizer_length(tokenizer, text_encoder) -> None:
    """A tokenizer saved without CLIP's 77-token limit pads to 10^30: take it from the encoder."""
    limit = int(text_encoder.config.max_position_embeddings)
    if not tokenizer.model_max_length or tokenizer.model_max_length > limit:
        tokenizer.model_max_length = limit


def frozen_unet_dtype(accelerator):
    """The frozen UNet's dtype: half precision on GPUs; float32 on the CPU, where autocast does not
    cover group_norm and the prepared ControlNet's float32 residuals would meet bf16 norm weights."""
    import torch

    return torch.float32 if accelerator.device.type == "cpu" else weight_dtype(accelerator)


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def oom_message(step: int, what: str) -> str:
    where = "on the first training step" if step == 0 else f"at step {step + 1}"
    return (
        f"out of memory {where} ({what}): lower --batch-size (keep the effective batch with --grad-accum), "
        "use --mixed-precision bf16/fp16, keep gradient checkpointing on, or lower --resolution"
    )


# -- checkpoints ---------------------------------------------------------------------------------------------
def resolve_resume(out: Path, resume_from: str | None) -> Path | None:
    if not resume_from:
        return None
    if resume_from == "latest":
        found = list_checkpoints(out)
        return found[-1][1] if found else None  # nothing yet: start fresh (diffusers' behaviour)
    path = Path(resume_from).expanduser()
    if not path.is_dir():
        raise TrainError(f"--resume-from {resume_from}: no such checkpoint folder")
    if not (path / ACCELERATE_STATE).is_dir():
        raise TrainError(f"--resume-from {path}: not a training checkpoint (no {ACCELERATE_STATE}/ inside)")
    return path


def read_json(path: Path, what: str, expected_format: str | None = None) -> dict[str, Any]:
    """A JSON object from ``path``, with one-line errors naming ``what`` it should be."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainError(f"{path} is not a readable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise TrainError(f"{path} is not a {what} (not a JSON object)")
    if expected_format is not None and data.get("format") != expected_format:
        raise TrainError(f"{path} has format {data.get('format')!r}, expected {expected_format!r}")
    return data


def save_accelerate_state(accelerator, folder: Path) -> None:
    """Optimizer, LR scheduler, RNG and scaler state; the model weights are saved by the trainer
    in the published layout, so they are dropped here (the hook empties the weights list)."""
    accelerator.save_state(str(folder))


def drop_model_weights_hooks(accelerator) -> None:
    """Register the save/load hooks that keep model weights out of accelerate_state/."""

    def on_save(models, weights, output_dir):
        weights.clear()

    def on_load(models, input_dir):
        models.clear()  # the trainer loaded the weights from the checkpoint's published files

    accelerator.register_save_state_pre_hook(on_save)
    accelerator.register_load_state_pre_hook(on_load)


def config_dict(config: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


def cosine_scheduler(optimizer, warmup: int, total: int, num_processes: int):
    from diffusers.optimization import get_scheduler

    # a prepared scheduler steps once per process per optimizer step (accelerate's convention)
    return get_scheduler(
        "cosine",
        optimizer=optimizer,
        num_warmup_steps=warmup * num_processes,
        num_training_steps=max(1, total) * num_processes,
    )


def progress_line(step: int, total: int, loss: float, t0: float, start_step: int) -> str:
    done = step - start_step
    rate = (time.perf_counter() - t0) / max(1, done)
    eta = rate * (total - step)
    return f"step {step}/{total}  loss {loss:.4f}  {rate:.2f} s/step  eta {math.ceil(eta)} s"


def read_text_model_meta(folder: Path) -> dict[str, Any]:
    """A text-to-SAR model folder's meta (:mod:`sarviz.formats.text_run`); an unreadable one is a training error
    (the run to resume or refine). Shared by the SD 1.5/SDXL and the SD3 text trainers."""
    from sarviz.errors import GenerationError
    from sarviz.formats.text_run import read_meta

    try:
        return read_meta(folder)
    except GenerationError as exc:
        raise TrainError(str(exc)) from None
