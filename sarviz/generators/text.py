"""Text-to-SAR generator (seed paper 001, ONERA): a prompt → a synthetic SAR image.

A trained run (``sarviz train text``, layout sarviz.formats.text_run) on a Stable Diffusion 1.5 or SDXL
base (diffusers folder; the pipeline class comes from its ``model_index.json``)::

    RUN/sarviz_text_model.json          base, base_kind, token, unet (full|lora), calibration,
                                        polarisation (VV | VV+VH), image_mode (L | RGB), resolution
    RUN/unet/                           full UNet (UNet2DConditionModel.save_pretrained), or
    RUN/unet_lora/                      a PEFT LoRA on the base UNet
    RUN/text_encoder_lora/              PEFT LoRA on text_encoder
    RUN/text_encoder_2_lora/            (SDXL) PEFT LoRA on text_encoder_2
    RUN/learned_embeds.safetensors      the learned token (diffusers textual-inversion format)
    RUN/vae/                            (optional) the refined VAE decoder

Loading: the base pipeline, then the full UNet or the UNet LoRA (merged with PEFT, the
library that wrote it), the learned token (``pipe.load_textual_inversion``: added to the
tokenizer(s) and their embedding tables before any prompt is encoded), the text-encoder
LoRA(s) (merged), the refined VAE. A prompt without the token gets it prepended — the model
was trained on captions that start with it — and the provenance says so.

Output: the decoded image ([0, 1]) → dB with the run's calibration (``calibration_from_card``
on ``sarviz_text_model.json``): an "L" model gives VV (the mean of the three decoded channels,
which the training replicated), an "RGB" model gives R = VV, G = VH. There is no scene and so
no georeference: the :class:`~sarviz.generators.base.GenerationResult` s have no CRS and write
a GeoTIFF without one, and a PNG.

Precision follows the geo generator (:mod:`sarviz.generators.diffusion`): UNet in the dtype
that :func:`runtime.choose_dtype` picks (bfloat16 on AMX CPUs), latents/scheduler in float32,
text encoders in float32, the VAE in bfloat16 only when the model runs bfloat16.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.calibration import Calibration, calibration_from_card
from sarviz.formats import text_run
from sarviz.formats.text_run import EMBEDS_FILE, TextRun  # noqa: F401 - re-exported
from sarviz.formats.text_run import FORMAT as RUN_FORMAT  # noqa: F401 - re-exported
from sarviz.formats.text_run import MODEL_FILE as RUN_METADATA
from sarviz.generators import runtime
from sarviz.generators.base import (
    GenerationError,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    PromptGenerator,
    Readiness,
    WeightsMissing,
)
from sarviz.generators.base_model import base_kind  # the one base_kind (used here, importable from here)
from sarviz.generators.run import RunContext, RunRecord, check_seed, run_generation
from sarviz.generators.sampling import SamplerSettings
from sarviz.registry import ModelCard, register_kind

KIND = "text-to-sar"
DEFAULT_TOKEN = "<SAR>"
#: seed 001 gives no sampler settings; these are diffusers' usual text-to-image defaults
DEFAULT_SAMPLER: dict[str, Any] = {
    "negative_prompt": "optical image, colour, cloud, blurry, cartoon, painting",
    "scheduler": "dpmsolver++-2m-karras",
    "steps": 30,
    "guidance": 7.0,
}
PIPELINES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}
MAX_IMAGES = 16


# -- the run folder --------------------------------------------------------------------------------
def read_run(run: str | os.PathLike) -> dict[str, Any]:
    """``sarviz_text_model.json`` of a run, checked (:func:`sarviz.formats.text_run.read_meta`)."""
    return text_run.read_meta(run)


@dataclass
class TextModelPaths:
    """Where one text-to-SAR model's files are (``base`` None → from the run's metadata)."""

    run: str
    base: str | None = None

    def meta(self) -> dict[str, Any]:
        return read_run(self.run)

    def resolved_base(self, meta: dict[str, Any] | None = None) -> str:
        base = self.base or (meta or self.meta()).get("base")
        if not base:
            raise GenerationError(f"{Path(self.run) / RUN_METADATA} names no base model; give one (--base)")
        return os.path.expanduser(base)

    def problems(self) -> list[str]:
        run = Path(self.run)
        if not run.is_dir():
            return [f"run folder {run} does not exist"]
        try:
            meta = self.meta()
        except GenerationError as exc:
            return [str(exc)]
        out = TextRun(run, meta).missing_parts()
        base = self.resolved_base(meta)
        if not (Path(base) / text_run.BASE_INDEX).is_file():
            out.append(f"base model folder {base} (with {text_run.BASE_INDEX}) is missing")
        return out

    def files_to_hash(self) -> dict[str, Path]:
        return TextRun(Path(self.run), {}).weight_files()


# -- loading ---------------------------------------------------------------------------------------
@dataclass
class LoadedTextPipeline:
    pipe: Any
    kind: str  # sd15 | sdxl
    token: str
    device: str
    dtype: str
    scheduler_config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tokenizers(self) -> list:
        return [t for t in (self.pipe.tokenizer, getattr(self.pipe, "tokenizer_2", None)) if t is not None]


def load_token_embedding(pipe, path: Path, token: str, kind: str) -> dict[str, Any]:
    """Put the learned token into the tokenizer(s) and text encoder(s) (textual inversion)."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:
        raise GenerationError(f"{path} is not a valid safetensors file ({exc})") from None
    if kind == "sdxl":
        missing = [k for k in ("clip_l", "clip_g") if k not in state]
        if missing:
            raise GenerationError(f"{path}: an SDXL token embedding needs keys clip_l and clip_g (missing {missing})")
        pipe.load_textual_inversion(
            state["clip_l"], token=token, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
        )
        pipe.load_textual_inversion(
            state["clip_g"], token=token, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
        )
        dims = [int(state["clip_l"].shape[-1]), int(state["clip_g"].shape[-1])]
    else:
        if token not in state:
            if len(state) != 1:
                raise GenerationError(f"{path}: no embedding for token {token!r} (keys {sorted(state)[:5]})")
            state = {token: next(iter(state.values()))}  # diffusers' single-vector file ("emb_params")
        pipe.load_textual_inversion({token: state[token]}, token=token)
        dims = [int(state[token].shape[-1])]
    return {"token": token, "dims": dims}


def load_text_pipeline(
    paths: TextModelPaths,
    device: str = "cpu",
    dtype: str = "float32",
    progress: ProgressCallback | None = None,
    merge_lora: bool = True,
    speed_options: bool = True,
    image_size: int | tuple[int, int] | None = None,
    image_steps: int | None = None,
) -> LoadedTextPipeline:
    """The base pipeline with the run's UNet, token, text-encoder LoRA(s) and VAE.

    ``speed_options``: apply the speed options measured on this machine (channels-last, attention,
    compile: :func:`runtime.speed_plan`) as the geo pipeline does, for images of ``image_size``
    (default: the UNet's) in ``image_steps`` steps (default: DEFAULT_SAMPLER's); off for a caller
    that takes the parts and decides itself (the SAR→SAR renderer)."""
    import diffusers.utils.logging as dlog

    problems = paths.problems()
    if problems:
        raise WeightsMissing("; ".join(problems))
    meta = paths.meta()
    base = paths.resolved_base(meta)
    kind = base_kind(base)
    if meta.get("base_kind") and meta["base_kind"] != kind:
        raise GenerationError(
            f"{Path(paths.run) / RUN_METADATA} says base_kind {meta['base_kind']!r} but {base} is a {kind} pipeline"
        )
    run = Path(paths.run)
    token = str(meta.get("token") or DEFAULT_TOKEN)
    total, t0 = 6, time.perf_counter()

    def step(i: int, msg: str) -> None:
        runtime.report(progress, i, total, msg)

    tdtype = runtime.torch_dtype(dtype)
    bars = dlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()  # "Loading pipeline components…" bars: progress goes to `progress`
    try:
        loaded = _load(paths, device, dtype, step, tdtype, merge_lora, run, meta, base, kind, token, t0)
    finally:
        if bars:
            dlog.enable_progress_bar()
    if speed_options:
        # the steps of this model at its default size are filed under this workload (compile choice)
        pipe = loaded.pipe
        size = image_size or int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
        workload = runtime.workload_name(pipe.unet.config.block_out_channels, size, controlnet=False)
        steps = int(image_steps or DEFAULT_SAMPLER["steps"])
        loaded.info["speed"] = runtime.apply_speed_plan(
            pipe, device, runtime.speed_plan(device, dtype, steps=steps, workload=workload)
        )
    return loaded


def _load(paths, device, dtype, step, tdtype, merge_lora, run, meta, base, kind, token, t0) -> LoadedTextPipeline:
    import diffusers
    import torch

    from sarviz.generators.diffusion import _cast_hooks, _quiet_loading, apply_unet_lora
    from sarviz.generators.sampling import make_scheduler

    def load(fn, *args, what: str, **kw):
        try:
            return fn(*args, **kw)
        except (OSError, ValueError) as exc:
            raise GenerationError(f"cannot load the {what} ({exc})") from None

    extra: dict[str, Any] = {}
    info: dict[str, Any] = {"base": base, "base_kind": kind, "unet": meta.get("unet", "lora")}
    with _quiet_loading():
        step(0, "loading the UNet")
        if meta.get("unet") == "full":
            extra["unet"] = load(
                diffusers.UNet2DConditionModel.from_pretrained,
                str(run / text_run.UNET_DIR),
                torch_dtype=torch.float32,
                use_safetensors=True,
                what=f"UNet from {run / 'unet'}",
            )
        if (run / text_run.VAE_DIR).is_dir():
            extra["vae"] = load(
                diffusers.AutoencoderKL.from_pretrained,
                str(run / text_run.VAE_DIR),
                torch_dtype=torch.float32,
                use_safetensors=True,
                what=f"refined VAE from {run / 'vae'}",
            )
            info["vae"] = "refined (run)"
        step(1, "loading the base pipeline")
        cls = getattr(diffusers, PIPELINES[kind])
        sd15_extra = {"safety_checker": None, "requires_safety_checker": False} if kind == "sd15" else {}
        pipe = load(
            cls.from_pretrained,
            base,
            torch_dtype=torch.float32,
            use_safetensors=True,
            what=f"{kind} base pipeline from {base}",
            **extra,
            **sd15_extra,
        )
        if meta.get("unet") != "full":
            step(2, "applying the UNet LoRA")
            pipe.unet, info["unet_lora"] = apply_unet_lora(pipe.unet, run / text_run.UNET_LORA_DIR, merge=merge_lora)
        step(3, "adding the learned token")
        info["token_embedding"] = load_token_embedding(pipe, run / EMBEDS_FILE, token, kind)
        step(4, "applying the text-encoder LoRA(s)")
        for i, name in enumerate(("text_encoder", "text_encoder_2")):
            folder = run / text_run.te_lora_dir(i)
            if folder.is_dir() and getattr(pipe, name, None) is not None:
                module, info[f"{name}_lora"] = apply_unet_lora(getattr(pipe, name), folder, merge=merge_lora)
                setattr(pipe, name, module)
            elif name == "text_encoder_2" and kind == "sd15" and folder.is_dir():
                raise GenerationError(f"{folder}: an SD 1.5 base has no second text encoder")
        pipe.unet.to(device=device, dtype=tdtype).eval().requires_grad_(False)
        if tdtype != torch.float32:
            _cast_hooks(pipe.unet, tdtype)
        for tok_name, enc_name in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
            enc, tok = getattr(pipe, enc_name, None), getattr(pipe, tok_name, None)
            if enc is None:
                continue
            enc.to(device=device, dtype=torch.float32).eval().requires_grad_(False)  # once per image: cheap
            limit = int(enc.config.max_position_embeddings)
            if tok is not None and not 0 < tok.model_max_length <= limit:
                # a tokenizer_config.json without model_max_length reads as "unlimited"; the
                # text encoder's position table is the real limit (77 for CLIP)
                tok.model_max_length = limit
        vae_dtype = tdtype if dtype == "bfloat16" else torch.float32  # float16 overflows SD VAEs
        pipe.vae.to(device=device, dtype=vae_dtype).eval().requires_grad_(False)
        if vae_dtype != torch.float32:
            # the pipelines call vae.decode() with float32 latents (SD 1.5 does not cast them):
            # cast at the decoder's own entry, return float32
            for part in (pipe.vae.post_quant_conv, pipe.vae.decoder):
                if part is not None:
                    _cast_hooks(part, vae_dtype)
    pipe.set_progress_bar_config(disable=True)
    scheduler_config = dict(pipe.scheduler.config)
    pipe.scheduler = make_scheduler(DEFAULT_SAMPLER["scheduler"], scheduler_config)
    step(5, "hashing the weights")
    info["weights_sha256"] = {k: runtime.file_sha256(p) for k, p in paths.files_to_hash().items()}
    info.setdefault("vae", "base")
    step(6, f"model loaded in {time.perf_counter() - t0:.0f} s")
    return LoadedTextPipeline(
        pipe=pipe, kind=kind, token=token, device=device, dtype=dtype, scheduler_config=scheduler_config, info=info
    )


# -- prompts ---------------------------------------------------------------------------------------
def prepare_prompt(prompt: str | None, token: str) -> tuple[str, bool]:
    """The prompt to encode and whether the token was prepended; refuses an empty prompt."""
    text = " ".join((prompt or "").split())
    if not text:
        raise GenerationError('the prompt is empty; describe the scene, e.g. "a SAR image of a port with ships"')
    if token and token not in text:
        return f"{token} {text}", True
    return text, False


def check_prompt_length(tokenizers: list, prompt: str, what: str = "prompt") -> None:
    """Refuse a prompt the text encoder(s) would silently truncate, saying how much is cut."""
    for tok in tokenizers:
        ids = tok(prompt, truncation=False, add_special_tokens=True)["input_ids"]
        limit = int(tok.model_max_length)
        if len(ids) > limit:
            cut = len(ids) - limit
            raise GenerationError(
                f"the {what} is {len(ids) - 2} tokens long but the text encoder takes "
                f"{limit - 2}; {cut} token(s) at the end would be cut — shorten it"
            )


def check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or v < 64 or v > 4096:
            raise GenerationError(f"{name} must be a whole number of pixels between 64 and 4096, got {v!r}")
        if v % 8:
            raise GenerationError(
                f"{name} {v} is not divisible by 8 (the VAE works on 8×8 blocks); use {v - v % 8} or {v - v % 8 + 8}"
            )


# -- the result ------------------------------------------------------------------------------------
#: the former result type of prompt generation: now the one GenerationResult (no georeference)
TextResult = GenerationResult


def numbered_paths(out: str | os.PathLike, count: int) -> list[Path]:
    """OUT.tif for one image; OUT_0.tif, OUT_1.tif, … for several."""
    out = Path(out)
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(count)]


def image_to_db(
    image: np.ndarray, calibration: Calibration, polarisation: str, image_mode: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decoded image (H, W, 3) in [0, 1] → VV (and VH) in dB with the run's calibration.

    "L" models were trained on grey images replicated into RGB: VV is the mean of the three
    channels (it averages out the VAE's small per-channel differences). "RGB" models were
    trained on R = VV, G = VH, B = VV (sarviz.formats.captioned): VV is the mean of R and B, VH is G.
    """
    image = np.asarray(image, dtype=np.float32)
    if image_mode == "RGB" or polarisation == "VV+VH":
        vv_unit = (image[..., 0] + image[..., 2]) / 2.0
        vh = calibration.from_unit(image[..., 1], "VH") if polarisation == "VV+VH" else None
        return calibration.from_unit(vv_unit, "VV"), vh
    return calibration.from_unit(image.mean(axis=-1), "VV"), None


# -- the generator ---------------------------------------------------------------------------------
@dataclass
class TextRequest(GenerationRequest):
    """A text-to-SAR request: the prompt and image size on top of the common fields."""

    width: int | None = None
    height: int | None = None
    num_images: int = 1


@dataclass(frozen=True)
class TextSettings:
    """What one prompt generation runs with."""

    sampler: SamplerSettings
    negative_prompt: str
    width: int
    height: int
    num_images: int


class TextGenerator(PromptGenerator):
    """A model card of kind ``text-to-sar`` as a generator of images from prompts."""

    kind = "text-to-SAR"
    #: the sampler a card's ``sampler`` section overrides (a subclass for another model family sets its own)
    default_sampler: dict[str, Any] = DEFAULT_SAMPLER

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card)
        weights = card.get("weights", {})
        if not isinstance(weights, dict) or not weights.get("run"):
            raise GenerationError(
                f"model card {card.path}: weights.run (a `sarviz train text` output folder) is required"
            )
        self.paths = TextModelPaths(run=card.resolve(weights["run"]), base=card.resolve(weights.get("base")))
        sampler = card.get("sampler", {})
        if not isinstance(sampler, dict):
            raise GenerationError(f"model card {card.path}: 'sampler' must be an object")
        self.sampler = {**self.default_sampler, **sampler}
        self.sampler_defaults = SamplerSettings.from_card(self.sampler, self.default_sampler, f"model card {card.path}")
        self.how_to_get = card.get("how_to_get", "")

    # -- readiness --------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        problems = self.paths.problems()
        if not problems:
            return Readiness.ok()
        short = f"model {self.card.id!r} cannot run: its weights are missing"
        how = f" How to get them: {self.how_to_get}" if self.how_to_get else ""
        return Readiness(
            False,
            problem=short,
            action="`sarviz models` says how to get them",
            details=f"{short} — " + "; ".join(problems) + f".{how}",
            missing=tuple(problems),
        )

    def metadata(self) -> dict[str, Any]:
        return self.paths.meta()

    def calibration(self) -> Calibration:
        return calibration_from_card(self.metadata())

    # -- loading ----------------------------------------------------------------------------
    def load(self, device: str, dtype: str, progress: ProgressCallback | None = None) -> LoadedTextPipeline:
        key = ((self.card.id, str(self.card.path), self.paths.run, self.paths.base), device, dtype)
        steps = int(self.sampler.get("steps") or DEFAULT_SAMPLER["steps"])
        return runtime.MODELS.get(  # the default size reads the run's metadata: only on a real load
            key,
            lambda: load_text_pipeline(
                self.paths, device, dtype, progress, image_size=self._default_size(), image_steps=steps
            ),
        )

    def _resolution(self) -> int:
        """The side this model was trained at (its images' default size)."""
        meta = self.metadata()
        return int(meta.get("resolution") or (1024 if meta.get("base_kind") == "sdxl" else 512))

    def _default_size(self) -> tuple[int, int]:
        """(width, height) of this model's images unless a request says otherwise."""
        side = self._resolution()
        return int(self.sampler.get("width") or side), int(self.sampler.get("height") or side)

    # -- generation -------------------------------------------------------------------------
    def settings(self, request: GenerationRequest) -> TextSettings:
        width, height = self._default_size()
        s = TextSettings(
            sampler=self.sampler_defaults.with_request(request),
            negative_prompt=request.negative_prompt
            if request.negative_prompt is not None
            else self.sampler["negative_prompt"],
            width=int(getattr(request, "width", None) or width),
            height=int(getattr(request, "height", None) or height),
            num_images=int(getattr(request, "num_images", 1) or 1),
        )
        if not 1 <= s.num_images <= MAX_IMAGES:
            raise GenerationError(f"the number of images must be between 1 and {MAX_IMAGES}, got {s.num_images}")
        check_seed(request.seed, room=MAX_IMAGES)
        check_size(s.width, s.height)
        return s

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """One image per seed (``seed``, ``seed + 1``, … for ``num_images``), each with provenance."""
        if not isinstance(request, GenerationRequest):  # called as a map generator, with a scene
            raise GenerationError(
                f"model {self.card.id!r} is a text-to-SAR model: it makes images from a prompt "
                "(the Prompt page, `sarviz generate-text`), not from a map scene"
            )
        self.check_ready()  # before reading the run's metadata: a missing run says how to get it
        settings = self.settings(request)
        meta = self.metadata()
        calibration = calibration_from_card(meta)
        n, steps = settings.num_images, settings.sampler.steps

        def work(ctx: RunContext):
            loaded: LoadedTextPipeline = ctx.loaded
            speed = loaded.info.get("speed")
            if speed:  # this request's steps are filed under its own image size
                unet = loaded.pipe.unet
                size = (settings.width, settings.height)
                speed["workload"] = runtime.workload_name(unet.config.block_out_channels, size, controlnet=False)
            prompt, prepended = prepare_prompt(request.prompt, loaded.token)
            check_prompt_length(loaded.tokenizers, prompt)
            if settings.negative_prompt:
                check_prompt_length(loaded.tokenizers, settings.negative_prompt, "negative prompt")
            images = []
            for k in range(n):
                t0 = time.perf_counter()
                image = self._denoise(ctx, prompt, settings, int(request.seed) + k, k)
                images.append((image, time.perf_counter() - t0))
            return images, prompt, prepended, loaded

        def finish(raw, record: RunRecord) -> list[GenerationResult]:
            images, prompt, prepended, loaded = raw
            results = []
            for k, (image, elapsed) in enumerate(images):
                seed = int(request.seed) + k
                vv, vh = image_to_db(image, calibration, meta.get("polarisation", "VV"), meta.get("image_mode", "L"))
                prov = {
                    "model_id": self.model_id,
                    "model_name": self.card.name,
                    "model_kind": KIND,
                    "source": "generated",
                    "scene_id": f"prompt-seed{seed}",
                    "prompt": prompt,
                    "prompt_as_typed": request.prompt,
                    "token": loaded.token,
                    "token_prepended": prepended,
                    "negative_prompt": settings.negative_prompt,
                    "seed": seed,
                    **settings.sampler.provenance(),
                    "width": settings.width,
                    "height": settings.height,
                    "base": loaded.info["base"],
                    "base_kind": loaded.kind,
                    "unet": loaded.info["unet"],
                    "vae": loaded.info["vae"],
                    "weights_sha256": loaded.info["weights_sha256"],
                    "run": self.paths.run,
                    "polarisation": meta.get("polarisation", "VV"),
                    "image_mode": meta.get("image_mode", "L"),
                    "calibration": calibration.to_dict(),
                    "db_range": {p: list(r) for p, r in calibration.ranges.items()},
                    "georeferenced": False,
                    "seconds": round(elapsed, 2),
                }
                if n > 1:
                    prov["batch"] = {"index": k, "size": n, "first_seed": int(request.seed)}
                results.append(GenerationResult(vv, vh, provenance=prov))
            return results

        return run_generation(
            self,
            request,
            total=n * steps,
            work=work,
            finish=finish,
            progress=progress,
            cancel=cancel,
            dtype=request.dtype,
        )

    def _denoise(self, ctx: RunContext, prompt: str, settings: TextSettings, seed: int, k: int) -> np.ndarray:
        import torch

        loaded: LoadedTextPipeline = ctx.loaded
        pipe = loaded.pipe
        pipe.scheduler = settings.sampler.make_scheduler(loaded.scheduler_config)
        steps = settings.sampler.steps
        generator = torch.Generator("cpu").manual_seed(seed)  # same seed, same noise on every device
        with torch.inference_mode():
            out = pipe(
                prompt=prompt,
                negative_prompt=settings.negative_prompt or None,
                width=settings.width,
                height=settings.height,
                num_inference_steps=steps,
                guidance_scale=settings.sampler.guidance,
                generator=generator,
                output_type="np",
                callback_on_step_end=ctx.diffusers_callback(offset=k * steps),
                return_dict=True,
            )
        return np.asarray(out.images[0], dtype=np.float32)


def run_card(run: str | os.PathLike, base: str | None = None, template: ModelCard | None = None) -> ModelCard:
    """An in-memory card for a run folder given on the command line (sampler from ``template``)."""
    data = copy.deepcopy(template.data) if template is not None else {}
    run_abs = str(Path(run).expanduser().resolve())
    base_abs = str(Path(base).expanduser().resolve()) if base else None
    data.update(
        {
            "id": f"run:{Path(run_abs).name}",
            "name": f"text-to-SAR run {Path(run_abs).name}",
            "kind": KIND,
            "weights": {"run": run_abs, "base": base_abs},
        }
    )
    data.pop("how_to_get", None)
    return ModelCard(id=data["id"], name=data["name"], kind=KIND, path=Path(run_abs) / text_run.CARD_FILE, data=data)


register_kind(KIND, TextGenerator)
