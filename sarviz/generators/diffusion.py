"""HuiYanEarth-compatible diffusion generator: SD 1.5 + 65-channel ControlNet + UNet LoRA.

Checkpoint layout (the published HuiYanEarth-SAR release, or a user's own training run):
:mod:`sarviz.formats.controlnet` (ControlNet weights with a 65-ch conv_in, ``unet_lora/``
PEFT folder, optional ``sarviz_train.json``),

on a base Stable Diffusion 1.5 (a local diffusers folder or a Hugging Face id already in
the local cache) with an optional VAE override (the reference uses sd-vae-ft-mse).

Loading rules: the ControlNet's condition channel count comes from the weights, not
``config.json``; ``module.`` prefixes (DistributedDataParallel) are stripped; safetensors
is the default and a pickle file (``.bin``) loads only with ``allow_pickle`` (even then
with ``torch.load(weights_only=True)``). The LoRA is loaded with PEFT
(``get_peft_model`` + ``set_peft_model_state_dict``: the library that wrote it) and
merged into the UNet in float32, so inference pays nothing for it.

Precision: on bfloat16/float16 the UNet and ControlNet run in half precision, while the
latents and the scheduler (DPM-Solver++ keeps a history of model outputs) stay in float32 —
the half-precision error then does not accumulate over the steps. The text encoder runs in
float32; the VAE decodes in bfloat16 when the model runs bfloat16, else in float32.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.calibration import Calibration, calibration_from_card
from sarviz.formats.controlnet import (  # noqa: F401 - re-exported (the checkpoint's files live there)
    CARD_FILE,
    COND_CONV_KEY,
    CONFIG_FILE,
    LORA_CONFIG,
    LORA_PICKLE,
    LORA_SAFETENSORS,
    PICKLE_NAME,
    SAFETENSORS_NAME,
    UNET_LORA_DIR,
    CheckpointPaths,
    ControlNetCheckpoint,
    find_weights,
    load_weights_file,
    read_train_metadata,
    strip_prefix,
)
from sarviz.formats.controlnet import TRAIN_META as TRAIN_METADATA
from sarviz.generators import runtime
from sarviz.generators.base import (
    GenerationError,
    GenerationRequest,
    GenerationResult,
    MapGenerator,
    ProgressCallback,
    Readiness,
    WeightsMissing,
    base_provenance,
)
from sarviz.generators.condition import Condition, ConditionSpec, build_condition
from sarviz.generators.run import RunContext, RunRecord, check_seed, run_generation
from sarviz.generators.sampling import SCHEDULERS, SamplerSettings, check_sampler, make_scheduler  # noqa: F401 - re-exported
from sarviz.registry import ModelCard, register_kind
from sarviz.scene import Scene

KIND = "controlnet-lora"

#: the HuiYanEarth-SAR reference inference settings (../shared/README.md)
REFERENCE_SAMPLER: dict[str, Any] = {
    "prompt": "satellite sar image, Sentinel-1, radar map, top down view, raw data, grayscale, "
    "grainy texture, speckle noise",
    "negative_prompt": "cloud, color, low resolution, pixelated, blocky, square artifacts, smooth, "
    "flat shading, blurring, painting, cartoon",
    "scheduler": "dpmsolver++-sde-karras",
    "steps": 50,
    "guidance": 2.5,
    "controlnet_scale": 1.1,
}
#: decoded image channel → polarisation. The dB range the training target was scaled from
#: is the model's *calibration* (:mod:`sarviz.calibration`: the card's ``calibration``
#: section, overridden by a trained checkpoint's ``sarviz_train.json``), never a copy here.
REFERENCE_OUTPUT: dict[str, Any] = {
    "channels": {"VV": "R", "VH": "G"},
}
#: the published inference settings (HuiYanEarth-SAR ``inference_sar_gray.py``: 50 steps,
#: float32) as a preset beside the card's fast defaults (25 steps, the device's best dtype)
REFERENCE_PRESET: dict[str, Any] = {"steps": 50, "dtype": "float32"}
# the scheduler catalogue, the sampler check and make_scheduler live in sarviz.generators.sampling
_CHANNEL_INDEX = {"R": 0, "G": 1, "B": 2}


# -- loading ------------------------------------------------------------------------------------
def load_controlnet(folder: str | Path, allow_pickle: bool = False):
    """A ControlNetModel (float32, CPU) whose condition channel count comes from the weights."""
    import torch
    from diffusers import ControlNetModel

    checkpoint = ControlNetCheckpoint.load(folder, allow_pickle)
    folder, weights = checkpoint.folder, checkpoint.weights_file()
    state = checkpoint.state_dict()
    channels = int(state[COND_CONV_KEY].shape[1])
    try:
        config = dict(ControlNetModel.load_config(str(folder)))
    except Exception as exc:
        raise GenerationError(f"{folder / CONFIG_FILE} is not a valid ControlNet config ({exc})") from None
    declared = config.get("conditioning_channels")
    config["conditioning_channels"] = channels  # the published config.json says 3; the weights decide
    # Build on the meta device and adopt the loaded tensors (assign=True): random init of a
    # 360 M-parameter model would cost seconds and a second copy in memory.
    with torch.device("meta"):
        model = ControlNetModel.from_config(config)
    try:
        result = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # shape mismatch between config and weights
        raise GenerationError(f"{weights} does not match {folder / CONFIG_FILE}: {str(exc)[:500]}") from None
    if result.missing_keys or result.unexpected_keys:
        raise GenerationError(
            f"{weights} does not match {folder / CONFIG_FILE}: missing {result.missing_keys[:5]}"
            f"{'…' if len(result.missing_keys) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
            f"{'…' if len(result.unexpected_keys) > 5 else ''}"
        )
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise GenerationError(f"{weights}: tensors {leftovers[:5]} were not initialised")
    model.register_to_config(conditioning_channels=channels)
    model.eval().requires_grad_(False)
    return model, {
        "conditioning_channels": channels,
        "config_conditioning_channels": declared,
        "weights_file": str(weights),
    }


def normalise_lora_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Keys in the layout PEFT's ``set_peft_model_state_dict`` expects for a PeftModel.

    Accepts the published layout (``base_model.model.<module>.lora_A.weight``), the
    diffusers LoRA layout (``unet.<module>...``), plain ``<module>...``, ``module.``
    prefixes and keys that still carry the adapter name (``lora_A.default.weight``).
    """
    out = {}
    for key, value in strip_prefix(state).items():
        key = key.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
        if key.startswith("unet."):
            key = key[len("unet.") :]
        if not key.startswith("base_model.model."):
            key = "base_model.model." + key
        out[key] = value
    return out


def apply_unet_lora(unet, folder: str | Path, allow_pickle: bool = False, merge: bool = True):
    """Load a PEFT LoRA folder onto ``unet``; merged (default) or as a PeftModel."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    folder = Path(folder)
    if not (folder / LORA_CONFIG).is_file():
        raise WeightsMissing(f"LoRA config {folder / LORA_CONFIG} is missing")
    weights = find_weights(folder, LORA_SAFETENSORS, LORA_PICKLE, allow_pickle)
    if weights is None:
        if (folder / LORA_PICKLE).is_file():
            load_weights_file(folder / LORA_PICKLE, allow_pickle=False)
        raise WeightsMissing(f"LoRA weights {folder / LORA_SAFETENSORS} are missing")
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except Exception as exc:
        raise GenerationError(f"{folder / LORA_CONFIG} is not a valid PEFT LoRA config ({exc})") from None
    config.inference_mode = True
    state = normalise_lora_keys(load_weights_file(weights, allow_pickle))
    peft_model = get_peft_model(unet, config)
    try:
        result = set_peft_model_state_dict(peft_model, state)
    except RuntimeError as exc:
        raise GenerationError(f"{weights} does not fit this UNet: {str(exc)[:500]}") from None
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        raise GenerationError(
            f"{weights} does not fit this UNet / {folder / LORA_CONFIG}: unexpected {result.unexpected_keys[:5]}, "
            f"missing {missing[:5]} ({len(result.unexpected_keys)} unexpected, {len(missing)} missing)"
        )
    peft_model.eval()
    info = {
        "lora_rank": config.r,
        "lora_alpha": config.lora_alpha,
        "lora_tensors": len(state),
        "weights_file": str(weights),
        "merged": merge,
    }
    if merge:
        return peft_model.merge_and_unload(), info
    return peft_model, info


def _cast_hooks(module, dtype) -> None:
    """Run ``module`` in ``dtype`` while its callers keep float32 tensors.

    Inputs (tensors, tuples/lists of tensors, in args and kwargs) are cast to ``dtype``;
    outputs back to float32 — so the latents and the scheduler stay float32.
    """
    import torch

    def cast(x, to):
        if torch.is_tensor(x) and x.is_floating_point() and x.dtype != to:
            return x.to(to)
        if isinstance(x, (list, tuple)):
            return type(x)(cast(v, to) for v in x)
        return x

    def pre(_mod, args, kwargs):
        return cast(args, dtype), {k: cast(v, dtype) for k, v in kwargs.items()}

    def post(_mod, _args, _kwargs, output):
        return cast(output, torch.float32)

    module.register_forward_pre_hook(pre, with_kwargs=True)
    module.register_forward_hook(post, with_kwargs=True)


@dataclass
class LoadedPipeline:
    pipe: Any
    device: str
    dtype: str
    info: dict[str, Any] = field(default_factory=dict)
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_pipeline(
    paths: CheckpointPaths,
    device: str = "cpu",
    dtype: str = "float32",
    progress: ProgressCallback | None = None,
    compile_unet: bool = False,
    image_steps: int = 25,
    image_size: int = 512,
) -> LoadedPipeline:
    """The full SD 1.5 + ControlNet (+ LoRA) pipeline on ``device`` in ``dtype``.

    ``image_steps`` and ``image_size``: one image's denoising steps and side (the card's), against
    which ``SARVIZ_COMPILE=auto`` weighs the compile cost measured for this model at that size
    (:func:`runtime.speed_plan`).
    """
    import torch
    from diffusers import AutoencoderKL, StableDiffusionControlNetPipeline, UNet2DConditionModel
    from transformers import CLIPTokenizer

    problems = paths.problems()
    if problems:
        raise WeightsMissing("; ".join(problems))
    total = 7
    t0 = time.perf_counter()
    use_st = None if paths.allow_pickle else True

    def step(i: int, msg: str) -> None:
        runtime.report(progress, i, total, msg)

    def hub(fn, ref, **kw):
        try:
            return fn(ref, use_safetensors=use_st, **kw) if use_st is not None else fn(ref, **kw)
        except (OSError, ValueError, EnvironmentError) as exc:
            raise GenerationError(f"cannot load {kw.get('subfolder') or 'model'} from {ref}: {exc}") from None

    tdtype = runtime.torch_dtype(dtype)
    kind = device.split(":", 1)[0]

    def place(model, model_dtype) -> None:
        # Each big model goes to its device/dtype right after loading (the LoRA merged in
        # float32 first), so that at most one float32 copy is in memory at a time.
        model.to(device=device, dtype=model_dtype)
        model.eval().requires_grad_(False)
        if model_dtype != torch.float32:
            _cast_hooks(model, model_dtype)

    with _quiet_loading():
        step(0, "loading the ControlNet")
        controlnet, cn_info = load_controlnet(paths.controlnet, paths.allow_pickle)
        place(controlnet, tdtype)
        step(1, "loading the base UNet")
        unet = hub(UNet2DConditionModel.from_pretrained, paths.base, subfolder="unet", torch_dtype=torch.float32)
        lora_info = None
        if paths.unet_lora:
            step(2, "applying the UNet LoRA")
            unet, lora_info = apply_unet_lora(unet, paths.unet_lora, paths.allow_pickle, merge=True)
        place(unet, tdtype)
        step(3, "loading the text encoder and tokenizer")
        try:
            tokenizer = CLIPTokenizer.from_pretrained(paths.base, subfolder="tokenizer")
        except (OSError, ValueError) as exc:
            raise GenerationError(f"cannot load the tokenizer from {paths.base}: {exc}") from None
        # the text encoder runs once per image: float32 costs nothing and keeps the prompt exact
        text_encoder = _load_text_encoder(paths.base, use_st)
        text_encoder.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
        step(4, "loading the VAE")
        vae = (
            hub(AutoencoderKL.from_pretrained, paths.vae)
            if paths.vae
            else hub(AutoencoderKL.from_pretrained, paths.base, subfolder="vae")
        )
        # The VAE decodes once per image, but at 512 px it costs as much as several UNet steps on
        # a CPU. bfloat16 (AMX CPUs, modern GPUs) keeps float32's range, and its rounding error is
        # far below the VAE's own reconstruction error (the benchmark reports the end-to-end dB
        # difference); float16 overflows in SD 1.5 VAEs, so float16 runs decode in float32.
        vae_dtype = tdtype if dtype == "bfloat16" else torch.float32
        vae.to(device=device, dtype=vae_dtype).eval().requires_grad_(False)
    from diffusers import DDIMScheduler

    try:
        scheduler_config = dict(DDIMScheduler.load_config(paths.base, subfolder="scheduler"))
    except (OSError, ValueError):  # a base without a scheduler folder: SD 1.5's training schedule
        scheduler_config = {
            "num_train_timesteps": 1000,
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "steps_offset": 1,
            "clip_sample": False,
            "set_alpha_to_one": False,
        }
    step(5, f"model on {device} ({dtype})")
    pipe = StableDiffusionControlNetPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        controlnet=controlnet,
        scheduler=make_scheduler("dpmsolver++-sde-karras", scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    if kind == "cuda":
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        if free < 6 * 2**30:  # small GPUs: trade a little speed for fitting in memory
            pipe.enable_attention_slicing()
            pipe.vae.enable_tiling()
    elif kind == "mps":
        pipe.enable_attention_slicing()  # diffusers' advice for MPS with < 64 GB unified memory
    # channels_last (cuDNN's fast layout; measured no gain on CPUs here) and torch.compile, per
    # runtime.speed_plan: the numbers behind the defaults are in benchmarks/RESULTS_cpu_speed.md
    workload = runtime.workload_name(unet.config.block_out_channels, image_size, controlnet=True)
    plan = runtime.speed_plan(device, dtype, steps=image_steps, workload=workload)
    if compile_unet:
        plan["compile"], plan["compile_why"] = True, "compile_unet (caller)"
    speed = runtime.apply_speed_plan(pipe, device, plan)
    step(6, "hashing the weights")
    hashes = {name: runtime.file_sha256(p, persistent=True) for name, p in paths.files_to_hash().items()}
    step(7, f"model loaded in {time.perf_counter() - t0:.0f} s")
    info = {
        "controlnet": cn_info,
        "unet_lora": lora_info,
        "weights_sha256": hashes,
        "base": paths.base,
        "vae": paths.vae or f"{paths.base} (vae)",
        "speed": speed,
    }
    return LoadedPipeline(pipe=pipe, device=device, dtype=dtype, info=info, scheduler_config=scheduler_config)


@contextlib.contextmanager
def _quiet_loading():
    """Hide diffusers/transformers info chatter and progress bars while loading weights."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    before = (dlog.get_verbosity(), tlog.get_verbosity())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(before[0])
        tlog.set_verbosity(before[1])
        tlog.enable_progress_bar()


def _load_text_encoder(base: str, use_safetensors: bool | None):
    import torch
    from transformers import CLIPTextModel

    try:
        return CLIPTextModel.from_pretrained(
            base, subfolder="text_encoder", torch_dtype=torch.float32, use_safetensors=use_safetensors
        )
    except (OSError, ValueError) as exc:
        raise GenerationError(
            f"cannot load the text encoder from {base} (safetensors only unless pickle files are allowed): {exc}"
        ) from None


# -- calibration and training metadata -------------------------------------------------------------
def model_calibration(card: ModelCard, trained: dict[str, Any] | None = None) -> tuple[Calibration, str]:
    """The calibration a diffusion model's output mapping uses, and where it came from.

    A checkpoint's own ``sarviz_train.json`` (written by sarviz's trainer) wins over the card;
    then the card's ``calibration`` (or legacy ``output.db_range``); then the default.
    """
    try:
        if trained and trained.get("calibration"):
            return Calibration.from_dict(trained["calibration"]), f"checkpoint {TRAIN_METADATA}"
        data = card.data or {}
        source = "model card" if data.get("calibration") or (data.get("output") or {}).get("db_range") else "default"
        return calibration_from_card(data), source
    except ValueError as exc:
        raise GenerationError(f"model card {card.path}: invalid calibration ({exc})") from None


# -- the generator ---------------------------------------------------------------------------------
def _card_section(card: ModelCard, name: str, default: dict[str, Any]) -> dict[str, Any]:
    value = card.get(name, default)
    if not isinstance(value, dict):
        raise GenerationError(f"model card {card.path}: {name!r} must be an object")
    return value


@dataclass(frozen=True)
class GeoSettings:
    """What one geo generation runs with: the sampler, the prompts, the ControlNet scale, the dtype asked
    for, and which preset that is (``custom`` when explicit fields changed it: ``preset_changed``)."""

    sampler: SamplerSettings
    prompt: str
    negative_prompt: str
    controlnet_scale: float
    dtype: str | None
    preset: str
    preset_changed: tuple[str, ...] = ()


class DiffusionGenerator(MapGenerator):
    """A model card of kind ``controlnet-lora`` as a :class:`Generator`."""

    kind = "diffusion"

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        weights = _card_section(card, "weights", {})
        if not weights.get("controlnet") or not weights.get("base"):
            raise GenerationError(f"model card {card.path}: weights.controlnet and weights.base are required")
        controlnet = card.resolve(weights["controlnet"])
        lora = weights.get("unet_lora", UNET_LORA_DIR)
        lora_path = None
        if lora:  # relative LoRA paths are inside the ControlNet folder (the published layout)
            from sarviz.registry import expand_card_path  # never expands secret-named variables

            expanded = expand_card_path(lora)
            if expanded != os.path.expanduser(lora) and not Path(expanded).exists():
                expanded = lora  # a message about a missing path shows the card's own text
            lora_path = expanded if os.path.isabs(expanded) else str(Path(controlnet) / expanded)
        trained = read_train_metadata(Path(controlnet))
        # the VAE the checkpoint was trained with (sarviz train geo --vae) decodes its latents;
        # like the calibration and preprocessing, the checkpoint's own record wins over the card
        vae = trained.get("vae") or weights.get("vae")
        self.vae_source = f"checkpoint {TRAIN_METADATA}" if trained.get("vae") else "model card"
        self.paths = CheckpointPaths(
            controlnet=controlnet,
            base=card.resolve(weights["base"]),
            unet_lora=lora_path,
            vae=card.resolve(vae),
            allow_pickle=bool(weights.get("allow_pickle", False)),
        )
        self.sampler = {**REFERENCE_SAMPLER, **_card_section(card, "sampler", {})}
        preprocessing = _card_section(card, "preprocessing", {})
        self.preprocessing_source = "model card"
        if isinstance(trained.get("preprocessing"), dict):
            preprocessing, self.preprocessing_source = trained["preprocessing"], f"checkpoint {TRAIN_METADATA}"
        try:
            self.spec = ConditionSpec.from_dict(preprocessing)
        except GenerationError as exc:
            raise GenerationError(f"model card {card.path} ({self.preprocessing_source}): {exc}") from None
        output = {**REFERENCE_OUTPUT, **_card_section(card, "output", {})}
        try:
            self.channels = {pol: _CHANNEL_INDEX[str(output["channels"][pol]).upper()] for pol in ("VV", "VH")}
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise GenerationError(f"model card {card.path}: output needs channels VV/VH in R/G/B ({exc})") from None
        self.calibration, self.calibration_source = model_calibration(card, trained)
        if set(self.calibration.polarisations) < {"VV", "VH"}:
            raise GenerationError(
                f"model card {card.path}: the calibration ({self.calibration_source}) needs VV "
                f"and VH ranges, has {list(self.calibration.polarisations)}"
            )
        self.sampler_defaults = SamplerSettings.from_card(self.sampler, REFERENCE_SAMPLER, f"model card {card.path}")
        self.how_to_get = card.get("how_to_get", "")

    @property
    def db_range(self) -> dict[str, tuple[float, float]]:
        """The model's dB range per polarisation (from its calibration)."""
        return {pol: self.calibration.range(pol) for pol in ("VV", "VH")}

    # -- readiness --------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        problems = self.paths.problems()
        if not problems:
            return Readiness.ok()
        how = f" How to get them: {self.how_to_get}" if self.how_to_get else ""
        details = (
            f"model {self.card.id!r} ({self.card.path}) cannot run: its weights are missing — "
            + "; ".join(problems)
            + f".{how}"
        )
        # each problem starts with the part's name ("ControlNet folder /x …", "VAE: …"): keep the name
        parts = [re.split(r"[:/(]", p, maxsplit=1)[0].strip() for p in problems]
        return Readiness(
            False,
            problem=f"model {self.card.id!r} cannot run: its weights are missing ({', '.join(dict.fromkeys(parts))})",
            action="`sarviz models --details` says where to put them (SARVIZ_DEBUG=1 for the full error)",
            details=details,
        )

    # -- loading ----------------------------------------------------------------------------
    def cache_key(self) -> tuple:
        return (self.card.id, str(self.card.path), json.dumps(self.paths.__dict__, sort_keys=True))

    def load(self, device: str, dtype: str, progress: ProgressCallback | None = None) -> LoadedPipeline:
        key = (self.cache_key(), device, dtype)
        steps = int(self.sampler.get("steps") or 25)
        return runtime.MODELS.get(
            key,
            lambda: load_pipeline(self.paths, device, dtype, progress, image_steps=steps, image_size=self.spec.size),
        )

    # -- generation -------------------------------------------------------------------------
    def settings(self, request: GenerationRequest) -> GeoSettings:
        """The settings that will run, and which preset they are (``preset``).

        ``request.preset``: None/"fast" = the card's defaults; "reference" = the published
        inference (``REFERENCE_PRESET``: 50 steps — the card's ``reference_steps`` — in
        float32). Explicit request fields win over either; the recorded preset is then "custom".
        """
        preset = (request.preset or "fast").lower()
        if preset not in ("fast", "reference"):
            raise GenerationError(f"unknown settings preset {request.preset!r}; use 'fast' or 'reference'")
        defaults = dict(self.sampler)
        sampler_defaults = self.sampler_defaults
        dtype = request.dtype
        if preset == "reference":
            defaults.update({k: v for k, v in REFERENCE_SAMPLER.items() if k not in ("prompt", "negative_prompt")})
            sampler_defaults = SamplerSettings(
                scheduler=REFERENCE_SAMPLER["scheduler"],
                guidance=float(REFERENCE_SAMPLER["guidance"]),
                steps=int(self.sampler.get("reference_steps") or REFERENCE_PRESET["steps"]),
            )
            dtype = request.dtype or REFERENCE_PRESET["dtype"]
        sampler = sampler_defaults.with_request(request)
        try:
            scale = float(
                request.controlnet_scale if request.controlnet_scale is not None else defaults["controlnet_scale"]
            )
        except (TypeError, ValueError):
            raise GenerationError(f"ControlNet scale must be a number, got {request.controlnet_scale!r}") from None
        changed = [k for k in ("scheduler", "steps", "guidance") if getattr(sampler, k) != getattr(sampler_defaults, k)]
        if scale != float(defaults["controlnet_scale"]):
            changed.append("controlnet_scale")
        if preset == "reference" and dtype != REFERENCE_PRESET["dtype"]:
            changed.append("dtype")
        if not (math.isfinite(scale) and 0.0 <= scale <= 5.0):
            raise GenerationError(f"ControlNet scale must be between 0 and 5, got {scale}")
        check_seed(request.seed)
        return GeoSettings(
            sampler=sampler,
            prompt=request.prompt if request.prompt is not None else defaults["prompt"],
            negative_prompt=request.negative_prompt
            if request.negative_prompt is not None
            else defaults["negative_prompt"],
            controlnet_scale=scale,
            dtype=dtype,
            preset=preset if not changed else "custom",
            preset_changed=tuple(changed),
        )

    def condition(self, scene: Scene, request: GenerationRequest) -> Condition:
        return build_condition(scene, self.spec, angle_deg=request.angle_deg)

    def generate(
        self,
        scene: Scene,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        settings = self.settings(request)
        cond = self.condition(scene, request)  # cheap refusals (no embedding, bad angle) first
        steps = settings.sampler.steps

        def work(ctx: RunContext):
            loaded: LoadedPipeline = ctx.loaded
            cn_channels = loaded.info["controlnet"]["conditioning_channels"]
            if cn_channels != cond.array.shape[0]:
                raise GenerationError(
                    f"model {self.card.id!r}: its ControlNet takes {cn_channels} condition channels but the card's "
                    f"preprocessing makes {cond.array.shape[0]} (bands {list(self.spec.bands)}); fix the card's "
                    "preprocessing or use the matching weights"
                )
            latents = self._denoise(ctx, cond, settings, int(request.seed))
            ctx.report(steps, "decoding the image")
            return self._decode(loaded, latents), loaded.info

        def finish(raw, record: RunRecord) -> list[GenerationResult]:
            image, info = raw
            vv, vh = self._to_db(image, scene.shape)
            if scene.embedding is not None:
                # where the embedding was missing the model saw a filled-in condition: those output
                # pixels are not the model's answer for this place, so they stay missing (as in the emulator)
                hole = ~np.isfinite(scene.embedding).all(axis=0)
                vv[hole] = np.nan
                vh[hole] = np.nan
            prov = base_provenance(
                self.model_id,
                scene,
                request,
                model_name=self.card.name,
                model_kind=KIND,
                weights_sha256=info["weights_sha256"],
                base=info["base"],
                vae=info["vae"],
                **settings.sampler.provenance(),
                controlnet_scale=settings.controlnet_scale,
                prompt=settings.prompt,
                negative_prompt=settings.negative_prompt,
                image_size=self.spec.size,
                output_mapping={
                    "channels": {k: "RGB"[v] for k, v in self.channels.items()},
                    "db_range": {k: list(v) for k, v in self.db_range.items()},
                },
                calibration=self.calibration.to_dict(),
                calibration_source=self.calibration_source,
                preprocessing_source=self.preprocessing_source,
                settings_preset=settings.preset,
                **({"settings_preset_changed": list(settings.preset_changed)} if settings.preset_changed else {}),
                controlnet_conditioning_channels=info["controlnet"]["conditioning_channels"],
                lora=info["unet_lora"] is not None,
                **cond.provenance(),
            )
            notes = list(cond.notes)
            pixel_m, size = scene.pixel_size_m, self.spec.size
            if abs(pixel_m - 10.0) > 2.5 or max(scene.shape) < 0.75 * size:
                # the model learnt textures of 512×512 patches at 10 m; a stretched condition moves them
                notes.append(
                    f"scale: the scene is {scene.width}×{scene.height} px at ~{pixel_m:.0f} m, but the "
                    f"model makes {size}×{size} px at 10 m; the generated texture is resampled "
                    f"({size / max(scene.shape):.1f}× in size) — use a {size} px patch on the 10 m grid "
                    "(`--grid utm --size 512`) for true-scale texture"
                )
            if notes:
                prov["notes"] = notes
            return [GenerationResult(vv_db=vv, vh_db=vh, crs=scene.crs, transform=scene.transform, provenance=prov)]

        return run_generation(
            self, request, total=steps, work=work, finish=finish, progress=progress, cancel=cancel, dtype=settings.dtype
        )[0]

    def _denoise(self, ctx: RunContext, cond: Condition, settings: GeoSettings, seed: int):
        import torch

        loaded: LoadedPipeline = ctx.loaded
        pipe = loaded.pipe
        pipe.scheduler = settings.sampler.make_scheduler(loaded.scheduler_config)
        # a CPU generator makes the same seed give the same noise on every device
        generator = torch.Generator("cpu").manual_seed(seed)
        control = torch.from_numpy(cond.array)[None]
        size = self.spec.size
        with torch.inference_mode():
            out = pipe(
                prompt=settings.prompt,
                negative_prompt=settings.negative_prompt,
                image=control,
                height=size,
                width=size,
                num_inference_steps=settings.sampler.steps,
                guidance_scale=settings.sampler.guidance,
                controlnet_conditioning_scale=settings.controlnet_scale,
                generator=generator,
                output_type="latent",
                callback_on_step_end=ctx.diffusers_callback(),
                return_dict=True,
            )
        return out.images

    def _decode(self, loaded: LoadedPipeline, latents) -> np.ndarray:
        """Latents → image in [-1, 1], (3, S, S) float32 (the training target's scale)."""
        import torch

        vae = loaded.pipe.vae
        with torch.inference_mode():
            z = latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor
            image = vae.decode(z, return_dict=False)[0]
        return image[0].float().clamp(-1, 1).cpu().numpy()

    def _to_db(self, image: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Decoded channels → VV/VH dB, resampled onto the scene grid (in linear power)."""
        import torch
        import torch.nn.functional as F

        out = []
        for pol in ("VV", "VH"):
            db = self.calibration.from_signed(image[self.channels[pol]], pol).astype(np.float64)
            if db.shape != shape:
                power = torch.from_numpy(10.0 ** (db / 10.0))[None, None].float()
                down = shape[0] < db.shape[0] or shape[1] < db.shape[1]
                power = F.interpolate(power, size=shape, mode="bilinear", align_corners=False, antialias=down)
                db = 10.0 * np.log10(np.maximum(power[0, 0].numpy(), 1e-12))
            out.append(db.astype(np.float32))
        return out[0], out[1]


def checkpoint_card(
    controlnet: str,
    base: str,
    vae: str | None = None,
    unet_lora: str | None = UNET_LORA_DIR,
    allow_pickle: bool = False,
    template: ModelCard | None = None,
) -> ModelCard:
    """An in-memory card for a checkpoint given on the command line (sampler etc. from ``template``)."""
    data = copy.deepcopy(template.data) if template is not None else {}
    controlnet_abs = str(Path(controlnet).expanduser().resolve())
    base_ref = str(Path(base).expanduser().resolve()) if Path(base).expanduser().exists() else base
    vae_ref = (
        None if vae is None else (str(Path(vae).expanduser().resolve()) if Path(vae).expanduser().exists() else vae)
    )
    data.update(
        {
            "id": f"checkpoint:{Path(controlnet_abs).name}",
            "name": f"checkpoint {controlnet_abs}",
            "kind": KIND,
            "weights": {
                "controlnet": controlnet_abs,
                "base": base_ref,
                "vae": vae_ref,
                "unet_lora": unet_lora,
                "allow_pickle": allow_pickle,
            },
        }
    )
    data.pop("how_to_get", None)
    return ModelCard(id=data["id"], name=data["name"], kind=KIND, path=Path(controlnet_abs) / CARD_FILE, data=data)


register_kind(KIND, DiffusionGenerator)
