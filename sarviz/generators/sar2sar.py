"""SAR→SAR rendering (seed 002): ControlNet image-to-image at a finer pixel spacing, tiled.

``Sar2SarRenderer.transform(source, request)`` (the image-transformer interface) and
:func:`render_file` (``sarviz render``) do, per polarisation:

1. read the input σ⁰ dB; A/(μ+3σ) statistics **once for the scene** (the input's, as in
   training — see :mod:`sarviz.datasets.sar2sar_pairs`);
2. up-sample it to the target spacing in the frequency domain (seed 001 §6) — the
   **condition** and the img2img **init image**;
3. denoise a latent canvas of the whole scene in overlapping tiles, the tiles' noise
   predictions **averaged in latent space at every step** (MultiDiffusion, Bar-Tal et al.
   2023) — one consistent speckle field, no seam; UNet/ControlNet/VAE memory is that of one
   tile (the canvas itself is 4 latent channels at 1/8 of the pixels);
4. decode the canvas tile by tile, each output pixel from the tile whose centre is nearest
   (no pixel averaging: it would raise ENL in the overlaps);
5. σ⁰ dB through the inverse normalisation; the clipped tail (> μ+3σ, which the model's [0, 1]
   range cannot carry) taken from the up-sampled input (``tail="keep"``) or flagged in a mask band
   (``tail="mask"``);
6. the consistency gate (:mod:`sarviz.sar2sar.consistency`) against the input, threshold from
   the run's training pairs; with K seeds a per-pixel spread band.

Seed 002 names none of the sampler settings; the defaults below are our choices
(docs/sar2sar.md): DDIM, 20 steps, strength 0.6, ControlNet scale 1.0, guidance 1.0 (no
classifier-free guidance: the ControlNet carries the content; ``--guidance`` > 1 turns it on).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.amplitude import (
    AmplitudeError,
    clipped_mask,
    denormalise_amplitude,
    normalise_amplitude,
)
from sarviz.errors import GenerationError, SarvizError, WeightsMissing
from sarviz.formats.controlnet import CONFIG_FILE
from sarviz.formats.model_card import ModelCard
from sarviz.formats.sar2sar import (
    RUN_FILE,
    RenderOutput,
    Sar2SarError,
    Sar2SarRun,
    SarGeoTiff,
)
from sarviz.generators import runtime
from sarviz.generators.base import (
    GenerationResult,
    ImageTransformer,
    ProgressCallback,
    Readiness,
    TransformRequest,
    calibration_of,
)
from sarviz.generators.base_model import MODEL_INDEX
from sarviz.generators.base_model import base_kind as _core_base_kind
from sarviz.generators.diffusion import _quiet_loading
from sarviz.generators.run import RunContext, RunRecord, check_seed, run_generation
from sarviz.generators.runtime import check_cancel, report
from sarviz.generators.sampling import SamplerSettings, make_scheduler
from sarviz.generators.text import TextModelPaths, load_text_pipeline
from sarviz.registry import register_kind
from sarviz.sar2sar.consistency import consistency, disagreement_map, seed_spread_map
from sarviz.sar2sar.resample import (
    check_factor,
    factor_for_pixel_size,
    fill_missing,
    output_shape,
    resample_db,
    scaled_transform,
)
from sarviz.settings import env_switch

#: seed 002 names none of these; our choices (docs/sar2sar.md). The sampler part is a SamplerSettings.
SAMPLER = SamplerSettings(scheduler="ddim", steps=20, guidance=1.0)
DEFAULTS: dict[str, Any] = {
    "steps": SAMPLER.steps,
    "strength": 0.6,
    "controlnet_scale": 1.0,
    "guidance": SAMPLER.guidance,
    "scheduler": SAMPLER.scheduler,
    "tile": 512,
    "overlap": 128,
    "tail": "keep",
    "prompt": "<SAR> SAR image",
}
PIPELINES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}
#: a rendered black pixel (0 after the model's [0, 1]) is "below −60 dB", not −inf
FLOOR_DB = -60.0


# -- model loading (shared with the trainer) -----------------------------------------------------------
@dataclass
class Components:
    kind: str
    unet: Any
    vae: Any
    tokenizers: list
    text_encoders: list
    scheduler_config: dict[str, Any]
    token: str | None
    info: dict[str, Any]


def base_kind(base: str | Path) -> str:
    """ "sd15" or "sdxl" (the core :func:`sarviz.generators.base_model.base_kind`; SD3 is refused)."""
    return _core_base_kind(base, supported=("sd15", "sdxl"))


def load_components(base: str | Path, text_weights: str | Path | None = None, device: str = "cpu") -> Components:
    """The base SD 1.5 / SDXL parts, or those of a ``sarviz train text`` run on it (token + LoRAs merged)."""
    import diffusers
    import torch

    base = Path(base)
    kind = base_kind(base)  # WeightsMissing without model_index.json, GenerationError for a non-SD pipeline
    token = None
    info: dict[str, Any] = {"base": str(base.resolve()), "base_kind": kind}
    if text_weights:
        try:
            loaded = load_text_pipeline(
                TextModelPaths(str(text_weights), str(base)), device=device, speed_options=False
            )
        except (GenerationError, OSError, ValueError) as exc:
            raise WeightsMissing(f"--text-weights {text_weights}: {str(exc).splitlines()[0]}") from None
        pipe, token = loaded.pipe, loaded.token
        info.update(
            text_weights=str(Path(text_weights).resolve()), text_weights_sha256=loaded.info.get("weights_sha256")
        )
    else:
        import diffusers.utils.logging as dlog

        dlog.disable_progress_bar()  # "Loading pipeline components…" bars are not our progress
        extra = {"safety_checker": None, "requires_safety_checker": False} if kind == "sd15" else {}
        try:
            with _quiet_loading():
                pipe = getattr(diffusers, PIPELINES[kind]).from_pretrained(
                    str(base), torch_dtype=torch.float32, **extra
                )
        except (OSError, ValueError) as exc:
            raise WeightsMissing(f"cannot load the base model {base}: {str(exc).splitlines()[0]}") from None
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    tokenizers = [t for t in (pipe.tokenizer, getattr(pipe, "tokenizer_2", None)) if t is not None]
    for tok, enc in zip(tokenizers, encoders):
        limit = int(enc.config.max_position_embeddings)
        if not 0 < tok.model_max_length <= limit:
            tok.model_max_length = limit
    return Components(kind, pipe.unet, pipe.vae, tokenizers, encoders, dict(pipe.scheduler.config), token, info)


def encode_prompt(comp: Components, texts: list[str], device, resolution: int):
    """(encoder hidden states, SDXL added conditions or None) — the same in training and rendering."""
    import torch

    ids = [
        tok(
            texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(device)
        for tok in comp.tokenizers
    ]
    if comp.kind == "sd15":
        return comp.text_encoders[0](input_ids=ids[0])[0], None
    hidden, pooled = [], None
    for enc, i in zip(comp.text_encoders, ids):
        out = enc(input_ids=i, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]
    if pooled is None:  # an SDXL base has two text encoders (base_kind checked its model_index.json)
        raise GenerationError("an SDXL base without its text encoders")
    r = resolution
    time_ids = torch.tensor([[r, r, 0, 0, r, r]], device=device, dtype=pooled.dtype).repeat(len(texts), 1)
    return torch.cat(hidden, dim=-1), {"text_embeds": pooled, "time_ids": time_ids}


def _offset_progress(ctx: RunContext, offset: int) -> ProgressCallback:
    """One render's progress inside the run's: its steps counted from ``offset``."""

    def progress(i: int, n: int, message: str) -> None:
        ctx.step(offset + i, message)

    return progress


# -- the tiled sampler ------------------------------------------------------------------------------------
@dataclass
class TilePlan:
    tile_px: int
    overlap_px: int
    canvas_px: tuple[int, int]  # padded to the model's multiple
    starts: tuple[list[int], list[int]]  # latent tile origins per axis
    latent_tile: tuple[int, int]

    @property
    def count(self) -> int:
        return len(self.starts[0]) * len(self.starts[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "tile_px": self.tile_px,
            "overlap_px": self.overlap_px,
            "canvas_px": list(self.canvas_px),
            "tiles": self.count,
            "grid": [len(self.starts[0]), len(self.starts[1])],
            "blending": "MultiDiffusion: noise predictions averaged in latent space at every step; decode: "
            "nearest tile centre per pixel",
        }


def plan_tiles(shape: tuple[int, int], tile: int, overlap: int, multiple: int) -> TilePlan:
    """Tiles of ``tile`` px overlapping by ``overlap`` px over a canvas padded to ``multiple`` px."""
    if tile < multiple or tile % multiple:
        raise GenerationError(f"--tile {tile} px: this model needs a multiple of {multiple} px (at least {multiple})")
    if not 0 <= overlap < tile or overlap % 8:
        raise GenerationError(f"--overlap {overlap} px must be a multiple of 8 in [0, tile)")
    canvas = tuple(max(multiple, math.ceil(n / multiple) * multiple) for n in shape)
    lt = tuple(min(tile, c) // 8 for c in canvas)
    stride = max(1, (tile - overlap) // 8)
    starts = []
    for c, t in zip(canvas, lt):
        n = c // 8
        s = list(range(0, max(1, n - t + 1), stride))
        if s[-1] + t < n:
            s.append(n - t)
        starts.append(s)
    return TilePlan(tile, overlap, canvas, (starts[0], starts[1]), lt)  # type: ignore[arg-type]


def compile_decision(mode: str | None, device: str, tile_steps: int, workload: str) -> dict[str, Any]:
    """The speed plan of a render — whether to ``torch.compile`` the UNet and ControlNet, their
    layout and attention backend — and why (for provenance).

    The one measured choice every diffusion generator uses (:func:`runtime.speed_plan`): ``auto``
    compiles only when earlier renders of this ``workload`` (:func:`runtime.workload_name`: model
    and tile size) on this machine measured that the render's ``tile_steps`` save more than the
    compile costs — never before a render ran compiled once (``on``). Renders run float32, so the
    float32 measurements decide; an explicit ``mode`` wins over ``SARVIZ_COMPILE``.
    """
    mode = (mode or env_switch("SARVIZ_COMPILE", "auto")).lower()
    if mode not in ("on", "off", "auto"):
        raise GenerationError(f"compile must be on, off or auto, got {mode!r}")
    plan = runtime.speed_plan(device, "float32", steps=tile_steps, workload=workload, compile_mode=mode)
    return {
        "compile": bool(plan["compile"]),
        "compile_why": f"{mode}: {plan.get('compile_why', '')}",
        "channels_last": bool(plan["channels_last"]),
        "attention": plan["attention"],
        "why": plan.get("why", ""),
        "tile_steps": tile_steps,
        "workload": workload,
        "compile_cache": plan.get("compile_cache", "cold"),
    }


def _model_multiple(comp: Components) -> int:
    return _multiple(comp.vae.config.block_out_channels, comp.unet.config.block_out_channels)


def _multiple(vae_blocks, unet_blocks) -> int:
    return 2 ** (len(vae_blocks) - 1) * 2 ** (len(unet_blocks) - 1)


def base_multiple(base: str | Path) -> int:
    """The pixel multiple a base's UNet and VAE need, from their diffusers config (no loading: the run
    sequence needs the step total before the model is loaded)."""
    try:
        blocks = [
            json.loads((Path(base) / part / CONFIG_FILE).read_text(encoding="utf-8"))["block_out_channels"]
            for part in ("vae", "unet")
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsMissing(f"base model {base}: unreadable vae/unet config ({exc})") from None
    return _multiple(*blocks)


def _pad_to(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.pad(a, ((0, shape[0] - a.shape[0]), (0, shape[1] - a.shape[1])), mode="symmetric")


def denoise_canvas(
    comp: Components,
    controlnet,
    cond_unit: np.ndarray,
    init_unit: np.ndarray,
    prompt: str,
    negative_prompt: str,
    steps: int,
    strength: float,
    guidance: float,
    controlnet_scale: float,
    plan: TilePlan,
    seed: int,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    scheduler: str = SAMPLER.scheduler,
) -> np.ndarray:
    """The rendered normalised amplitude on the padded canvas (one grey plane)."""
    import torch

    H, W = plan.canvas_px
    cond = torch.from_numpy(_pad_to(cond_unit, (H, W))).float()[None, None].repeat(1, 3, 1, 1)  # [0, 1]
    init = torch.from_numpy(_pad_to(init_unit, (H, W))).float()[None, None].repeat(1, 3, 1, 1) * 2 - 1
    vae, unet = comp.vae, comp.unet
    sf = vae.config.scaling_factor
    th, tw = plan.latent_tile
    windows = [(r, c) for r in plan.starts[0] for c in plan.starts[1]]
    use_cfg = guidance > 1.0
    with torch.no_grad():
        ehs, added = encode_prompt(comp, [prompt], device, plan.tile_px)
        if use_cfg:
            n_ehs, n_added = encode_prompt(comp, [negative_prompt or ""], device, plan.tile_px)
            ehs = torch.cat([n_ehs, ehs])
            if added is not None:
                added = {k: torch.cat([n_added[k], v]) for k, v in added.items()}
        # init latents: encoder means, averaged where tiles overlap (deterministic, not speckle)
        lat = torch.zeros(1, 4, H // 8, W // 8)
        cnt = torch.zeros(1, 1, H // 8, W // 8)
        for r, c in windows:
            px = init[:, :, r * 8 : (r + th) * 8, c * 8 : (c + tw) * 8].to(device)
            lat[:, :, r : r + th, c : c + tw] += vae.encode(px).latent_dist.mean.cpu() * sf
            cnt[:, :, r : r + th, c : c + tw] += 1
        lat = lat / cnt
        sched = make_scheduler(scheduler, comp.scheduler_config)
        sched.set_timesteps(steps)
        start = min(steps, max(1, round(steps * strength)))
        timesteps = sched.timesteps[steps - start :]
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(lat.shape, generator=g)
        latents = sched.add_noise(lat, noise, timesteps[:1])
        total = len(timesteps) * len(windows)
        done = 0
        for t in timesteps:
            eps = torch.zeros_like(latents)
            for r, c in windows:
                check_cancel(cancel)
                x = latents[:, :, r : r + th, c : c + tw].to(device)
                x = sched.scale_model_input(x, t)
                cx = cond[:, :, r * 8 : (r + th) * 8, c * 8 : (c + tw) * 8].to(device)
                if use_cfg:
                    x, cx = torch.cat([x, x]), torch.cat([cx, cx])
                kw = {"added_cond_kwargs": added} if added is not None else {}
                down, mid = controlnet(
                    x,
                    t,
                    encoder_hidden_states=ehs,
                    controlnet_cond=cx,
                    conditioning_scale=controlnet_scale,
                    return_dict=False,
                    **kw,
                )
                pred = unet(
                    x,
                    t,
                    encoder_hidden_states=ehs,
                    down_block_additional_residuals=down,
                    mid_block_additional_residual=mid,
                    return_dict=False,
                    **kw,
                )[0]
                if use_cfg:
                    un, co = pred.chunk(2)
                    pred = un + guidance * (co - un)
                eps[:, :, r : r + th, c : c + tw] += pred.float().cpu()
                done += 1
                report(
                    progress,
                    done,
                    total,
                    f"denoising: step {done // len(windows) + (done % len(windows) > 0)}"
                    f"/{len(timesteps)}, tile {(done - 1) % len(windows) + 1}/{len(windows)}",
                )
            latents = sched.step(eps / cnt, t, latents, return_dict=False)[0]
        # decode: each pixel from the tile whose centre is nearest (a hard cut inside the overlap)
        out = np.zeros((H, W), np.float32)
        best = np.full((H, W), np.inf, np.float32)
        yy, xx = np.mgrid[0 : th * 8, 0 : tw * 8]
        for r, c in windows:
            check_cancel(cancel)
            img = vae.decode(latents[:, :, r : r + th, c : c + tw].to(device) / sf, return_dict=False)[0]
            grey = ((img.float().cpu().clamp(-1, 1) + 1) / 2).mean(dim=1)[0].numpy()
            d = np.maximum(np.abs(yy + 0.5 - th * 4), np.abs(xx + 0.5 - tw * 4)).astype(np.float32)
            sl = (slice(r * 8, (r + th) * 8), slice(c * 8, (c + tw) * 8))
            take = d < best[sl]
            out[sl][take] = grey[take]
            best[sl][take] = d[take]
    return out


# -- the renderer -----------------------------------------------------------------------------------------
#: the renderer's knobs in ``TransformRequest.options`` (checked by :meth:`RenderSettings.from_options`)
RENDER_OPTIONS = ("factor", "pixel_size", "controlnet_scale", "tile", "overlap", "seeds", "tail", "compile")


@dataclass(frozen=True)
class RenderSettings:
    """The renderer-specific part of a request, typed and checked (``TransformRequest.options``)."""

    factor: float | None = None  # input spacing / output spacing (default 2)
    pixel_size: float | None = None  # output pixel size in CRS units (instead of factor)
    controlnet_scale: float = 1.0
    tile: int | None = None  # px; None → the run's training resolution
    overlap: int | None = None  # px; None → ¼ tile, at most 128
    seeds: int = 1  # ≥ 2: a per-pixel seed-spread band
    tail: str = "keep"  # keep | mask
    compile: str | None = None  # on | off | auto; None → $SARVIZ_COMPILE, else auto

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> RenderSettings:
        options = dict(options or {})
        unknown = sorted(set(options) - set(RENDER_OPTIONS))
        if unknown:
            raise GenerationError(f"unknown render option(s) {', '.join(unknown)}; use {', '.join(RENDER_OPTIONS)}")

        def num(name, cast, default=None):
            value = options.get(name)
            if value is None:
                return default
            try:
                return cast(value)
            except (TypeError, ValueError):
                raise GenerationError(f"{name} must be a number, got {value!r}") from None

        out = cls(
            factor=num("factor", float),
            pixel_size=num("pixel_size", float),
            controlnet_scale=num("controlnet_scale", float, DEFAULTS["controlnet_scale"]),
            tile=num("tile", int),
            overlap=num("overlap", int),
            seeds=num("seeds", int, 1),
            tail=str(options.get("tail") or DEFAULTS["tail"]),
            compile=None if options.get("compile") is None else str(options["compile"]),
        )
        if not (0.0 <= out.controlnet_scale <= 5.0 and 1 <= out.seeds <= 16):
            raise GenerationError("need 0 ≤ controlnet scale ≤ 5 and 1 ≤ seeds ≤ 16")
        if out.tail not in ("keep", "mask"):
            raise GenerationError("--tail must be keep or mask")
        return out


@dataclass
class LoadedRenderer:
    """What :meth:`Sar2SarRenderer.load` caches: the base parts and the ControlNet, on one device."""

    comp: Components  # comp.unet is the eager UNet, or its compiled twin during a compiled render
    controlnet: Any  # the eager ControlNet
    lock: threading.Lock = field(default_factory=threading.Lock)
    info: dict[str, Any] = field(default_factory=dict)
    #: the eager UNet (``comp.unet`` is switched to its compiled twin for a compiled render)
    eager_unet: Any = None
    #: the compiled twins of (UNet, ControlNet), made by the first render that compiles; they wrap
    #: the eager modules, so a render that does not compile runs the eager ones
    compiled: tuple[Any, Any] | None = None
    #: the (workload, layout) pairs compiled so far: a new tile size or layout is a new compile
    compiled_for: set[str] = field(default_factory=set)
    channels_last: bool = False  # the weights' layout now
    attention: str = "sdpa"  # the attention backend now

    def __post_init__(self) -> None:
        self.eager_unet = self.eager_unet or self.comp.unet


@dataclass
class RenderResult:
    output: RenderOutput
    consistency: dict[str, dict[str, Any]]
    input_db: dict[str, np.ndarray]
    upsampled_db: dict[str, np.ndarray]
    disagreement: dict[str, np.ndarray]
    result: GenerationResult  # the VV/VH view with the run sequence's provenance


class Sar2SarRenderer(ImageTransformer):
    """An image transformer: a SAR image in, the same ground at a finer spacing out (seed 002).

    Built from a run folder (``Sar2SarRenderer(run, checkpoint, base)``) or a model card of kind
    ``sar2sar`` (``{"kind": "sar2sar", "run": RUN, "checkpoint": N, "base": BASE}``). The
    request's ``options`` are :class:`RenderSettings`. With factor 1 the output is on the
    source's grid (a re-rendering); otherwise on a grid F times finer with the same bounds.
    """

    kind = "sar2sar"

    def __init__(
        self, run: str | Path, checkpoint: int | None = None, base: str | Path | None = None, card: Any = None
    ) -> None:
        self.run_path, self.checkpoint, self._base = Path(run), checkpoint, base
        if card is None:
            name = self.run_path.name + (f"-checkpoint-{checkpoint}" if checkpoint is not None else "")
            card = ModelCard(
                id=f"sar2sar:{name}",
                name=f"SAR→SAR ControlNet {name}",
                kind="sar2sar",
                path=self.run_path / RUN_FILE,
                data={"run": str(self.run_path)},
            )
        super().__init__(card)
        self._run: Sar2SarRun | None = None

    @classmethod
    def from_card(cls, card: Any) -> Sar2SarRenderer:
        run = card.get("run")
        if not run:
            raise GenerationError(
                f'model card {card.path}: a sar2sar card needs "run" (a `sarviz train sar2sar` folder)'
            )
        run = Path(run) if Path(run).is_absolute() else Path(card.path).parent / run
        return cls(run, card.get("checkpoint"), card.get("base"), card=card)

    @property
    def run(self) -> Sar2SarRun:
        if self._run is None:
            self._run = Sar2SarRun.open(self.run_path, self.checkpoint)
        return self._run

    @property
    def base(self) -> Path:
        return Path(self._base or self.run.meta.get("base", ""))

    def readiness(self) -> Readiness:
        try:
            run = self.run
        except Sar2SarError as exc:
            return Readiness(
                False,
                "the SAR→SAR model is missing or incomplete",
                "train one with `sarviz train sar2sar`, or give its folder",
                str(exc),
                (str(exc),),
            )
        missing = []
        if not run.weights_sha256():
            missing.append(f"{run.controlnet_dir}: no ControlNet weights (safetensors)")
        if not (self.base / MODEL_INDEX).is_file():
            missing.append(f"base model {self.base} ({MODEL_INDEX})")
        if missing:
            return Readiness(
                False,
                "the SAR→SAR model's weights are missing",
                "give --base BASE or retrain",
                "; ".join(missing),
                tuple(missing),
            )
        return Readiness.ok()

    def cache_key(self) -> tuple:
        return (
            "sar2sar",
            str(self.run.folder.resolve()),
            str(self.base.resolve()),
            str(self.run.meta.get("text_weights")),
            self.run.weights_sha256(),
        )

    def load(self, device: str, dtype: str, progress: ProgressCallback | None = None) -> LoadedRenderer:
        """The base parts and the ControlNet on ``device`` (float32: renders were measured only in float32)."""
        return runtime.MODELS.get((self.cache_key(), device, dtype), lambda: self._load(device, progress))

    def _load(self, device: str, progress: ProgressCallback | None) -> LoadedRenderer:
        from diffusers import ControlNetModel

        report(progress, 0, 2, "base model")
        comp = load_components(self.base, self.run.meta.get("text_weights"), device)
        report(progress, 1, 2, "ControlNet")
        try:
            cn = ControlNetModel.from_pretrained(str(self.run.controlnet_dir))
        except (OSError, ValueError) as exc:
            raise WeightsMissing(f"cannot load {self.run.controlnet_dir}: {str(exc).splitlines()[0]}") from None
        for m in (comp.unet, comp.vae, cn, *comp.text_encoders):
            m.to(device).eval().requires_grad_(False)
        return LoadedRenderer(comp, cn)

    # -- the image-transformer interface ----------------------------------------------------------------
    def transform(
        self,
        source: GenerationResult,
        request: TransformRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        if not source.georeferenced or source.transform is None:
            raise GenerationError("SAR→SAR rendering needs a georeferenced source (CRS and transform)")
        img = SarGeoTiff(
            dict(source.bands),
            source.crs,
            source.transform,
            path=str(source.provenance.get("scene_id") or source.provenance.get("model_id") or "source"),
        )
        res = self.render(img, request, progress, cancel, source_provenance=source.provenance)
        return res.result

    def render(
        self,
        img: SarGeoTiff,
        request: TransformRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        source_provenance: dict[str, Any] | None = None,
    ) -> RenderResult:
        """Render ``img`` through the run sequence; the COG (``output``), gate and maps, and the result view."""
        settings = RenderSettings.from_options(request.options)
        if request.dtype not in (None, "auto", "float32"):
            raise GenerationError(
                f"renders run in float32 (bf16/fp16 were not measured for renders), not {request.dtype}"
            )
        try:
            if settings.pixel_size is not None:
                factor = factor_for_pixel_size(img.transform, settings.pixel_size)
            else:
                factor = 2.0 if settings.factor is None else settings.factor
            factor = check_factor(factor)
        except SarvizError as exc:
            raise GenerationError(str(exc)) from None
        sampler = SAMPLER.with_request(request)
        strength = float(DEFAULTS["strength"] if request.strength is None else request.strength)
        if not 0.0 < strength <= 1.0:
            raise GenerationError(f"strength must be in (0, 1], got {strength}")
        seed = check_seed(request.seed, room=settings.seeds)
        self.check_ready()
        meta = self.run.meta
        tile = int(settings.tile or meta.get("resolution") or DEFAULTS["tile"])
        overlap = (
            settings.overlap if settings.overlap is not None else max(0, min(DEFAULTS["overlap"], tile // 4 // 8 * 8))
        )
        shape = img.shape
        out_shape = output_shape(shape, factor)
        plan = plan_tiles(out_shape, tile, overlap, base_multiple(self.base))
        n_steps = min(sampler.steps, max(1, round(sampler.steps * strength)))  # the img2img part of the schedule
        per_render = n_steps * plan.count
        total = per_render * settings.seeds * len(img.bands)
        calibration = meta.get("consistency_calibration") or {}
        dB_calibration = calibration_of(source_provenance or {}).to_dict()

        def work(ctx: RunContext) -> dict[str, Any]:
            loaded: LoadedRenderer = ctx.loaded
            comp = loaded.comp
            unet, cn = loaded.eager_unet, loaded.controlnet
            workload = runtime.workload_name(unet.config.block_out_channels, plan.tile_px, controlnet=True)
            speed = compile_decision(settings.compile, ctx.device, total, workload)
            if speed["channels_last"] != loaded.channels_last:  # the geo pipeline's layout rule (and the VAE)
                if loaded.compiled:  # frozen graphs hold the weights in the old layout: compile afresh
                    loaded.compiled = None
                    loaded.compiled_for.clear()
                    runtime.forget_compiled()
                runtime.set_layout((unet, cn, comp.vae), channels_last=speed["channels_last"])
                loaded.channels_last = speed["channels_last"]
            if speed["attention"] != loaded.attention:
                runtime.set_attention((unet, cn), speed["attention"])
                loaded.attention = speed["attention"]
            if speed["compile"]:
                # the geo pipeline's compile (runtime.compile_denoiser: freezing on the CPU); a tile size
                # or layout not compiled before is a new compile, and this render pays it
                loaded.compiled = loaded.compiled or (
                    runtime.compile_denoiser(unet, ctx.device),
                    runtime.compile_denoiser(cn, ctx.device),
                )
                key = f"{workload} {'channels-last' if speed['channels_last'] else 'nchw'}"
                speed["compile_paid"] = key not in loaded.compiled_for
                if speed["compile_paid"]:
                    ctx.report(0, "compiling the model for this tile size (the compiled kernels are cached)")
                comp.unet, cn = loaded.compiled
            else:
                key, speed["compile_paid"] = "", False
                comp.unet = unet
            loaded.info["speed"] = speed  # run_generation files this render's tile·step times under it
            try:
                return render_bands(ctx, comp, cn, speed)
            finally:
                if key and ctx.step_ends:  # a tile·step ran: this tile size's compile is paid
                    loaded.compiled_for.add(key)

        def render_bands(ctx: RunContext, comp: Components, cn: Any, speed: dict[str, Any]) -> dict[str, Any]:
            prompt = request.prompt or (
                DEFAULTS["prompt"] if comp.token or "<SAR>" in str(meta.get("token", "")) else "SAR image"
            )
            out: dict[str, Any] = {
                "bands": {},
                "masks": {},
                "cons": {},
                "inputs": {},
                "ups": {},
                "dis": {},
                "spread": {},
                "prompt": prompt,
                "speed": speed,
                "comp": comp,
            }
            done = 0
            for pol, db in img.bands.items():
                db = fill_missing(db)
                try:
                    _, stats = normalise_amplitude(db)  # the scene's statistics, once
                except AmplitudeError as exc:
                    raise GenerationError(f"band {pol}: {exc}") from None
                up = resample_db(db, out_shape)
                cond = normalise_amplitude(up, stats=stats)[0].astype(np.float32)
                clipped = clipped_mask(up, stats)
                renders = []
                for k in range(settings.seeds):
                    unit = denoise_canvas(
                        comp,
                        cn,
                        cond,
                        cond,
                        prompt,
                        request.negative_prompt or "",
                        sampler.steps,
                        strength,
                        sampler.guidance,
                        settings.controlnet_scale,
                        plan,
                        seed + k,
                        ctx.device,
                        _offset_progress(ctx, done),
                        ctx.cancel,
                        scheduler=sampler.scheduler,
                    )
                    done += per_render
                    unit = unit[: out_shape[0], : out_shape[1]]
                    out_db = denormalise_amplitude(unit, stats, floor_db=FLOOR_DB).astype(np.float32)
                    if settings.tail == "keep":  # above μ+3σ the model's [0, 1] cannot carry the input: keep its tail
                        out_db = np.where(clipped, np.maximum(up, out_db), out_db).astype(np.float32)
                    renders.append(out_db)
                out["bands"][pol] = renders[0]
                if settings.tail == "mask":
                    out["masks"][pol] = clipped
                if settings.seeds > 1:
                    out["spread"][pol] = seed_spread_map(renders, looks=max(2, round(factor)))
                gate = consistency(db, renders[0], calibration.get("threshold_db"), calibration.get("source"))
                out["cons"][pol] = {**gate.to_dict(), "amplitude_stats": stats.to_dict()}
                out["inputs"][pol], out["ups"][pol] = db, up
                out["dis"][pol] = disagreement_map(gate, db.shape)
            return out

        holder: dict[str, RenderResult] = {}

        def finish(raw: dict[str, Any], record: RunRecord) -> list[GenerationResult]:
            transform = scaled_transform(img.transform, shape, out_shape)
            prov = self._provenance(
                img,
                factor,
                out_shape,
                transform,
                sampler,
                strength,
                settings,
                seed,
                request,
                plan,
                raw["prompt"],
                raw["cons"],
                record.seconds,
                raw["comp"],
                raw["speed"],
            )
            prov["calibration"] = dB_calibration
            bands = dict(raw["bands"])
            for pol, spread in raw["spread"].items():
                bands[f"{pol}_seed_spread_db"] = spread
            pols = list(raw["bands"])
            vv = raw["bands"].get("VV", raw["bands"][pols[0]])
            vh = raw["bands"].get("VH") if "VV" in raw["bands"] else (raw["bands"][pols[1]] if len(pols) > 1 else None)
            if "VV" not in raw["bands"]:
                prov["bands_as_vv_vh"] = pols[:2]  # an HH/HV input: the result's two planes are these
            result = GenerationResult(vv, vh, img.crs, transform, prov)
            holder["r"] = RenderResult(
                RenderOutput(bands, img.crs, transform, prov, raw["masks"]),
                raw["cons"],
                raw["inputs"],
                raw["ups"],
                raw["dis"],
                result,
            )
            return [result]

        results = run_generation(
            self, request, total=total, work=work, finish=finish, progress=progress, cancel=cancel, dtype="float32"
        )
        rendered = holder["r"]
        rendered.output.provenance = rendered.result.provenance = results[0].provenance
        return rendered

    def _provenance(
        self,
        img,
        factor,
        out_shape,
        transform,
        sampler,
        strength,
        settings,
        seed,
        request,
        plan,
        prompt,
        cons,
        seconds,
        comp,
        speed,
    ) -> dict[str, Any]:
        meta = self.run.meta
        in_spacing = abs(img.transform.a)
        out_spacing = abs(transform.a)
        trained = meta.get("pairs", {})
        target_spacings = trained.get("source_spacing") or []
        finest = min(target_spacings) if target_spacings else None
        extrapolating = finest is None or out_spacing < 0.99 * finest
        return {
            "kind": "sar2sar render (seed 002 pipeline, sarviz choices)",
            "input": img.path,
            "input_spacing": in_spacing,
            "output_spacing": out_spacing,
            "crs_units": str(img.crs.linear_units or "degrees"),
            "factor_requested": factor,
            "factor_effective": [out_shape[0] / img.shape[0], out_shape[1] / img.shape[1]],
            "input_shape": list(img.shape),
            "output_shape": list(out_shape),
            "resampling": "Fourier, pixel-centre aligned, mirror padding, anti-ringing floor 0.5 × 2×2 input minimum",
            "normalisation": "A/(μ+3σ) of the input scene (sarviz.amplitude), once per scene and polarisation; "
            "inverted to σ⁰ dB",
            "tail": settings.tail,
            "sampler": {
                **sampler.provenance(),
                "strength": strength,
                "controlnet_scale": settings.controlnet_scale,
                "prompt": prompt,
                "negative_prompt": request.negative_prompt,
            },
            "seeds": [seed + k for k in range(settings.seeds)],
            "tile_plan": plan.to_dict(),
            "weights": {
                "run": str(self.run.folder.resolve()),
                "step": meta.get("step"),
                "controlnet_sha256": self.run.weights_sha256(),
                "base": comp.info.get("base"),
                "base_kind": comp.kind,
                "text_weights": comp.info.get("text_weights"),
            },
            "training_pairs": {
                "teaches": trained.get("teaches"),
                "factor": trained.get("factor"),
                "target_spacing": target_spacings,
                "dataset": meta.get("dataset"),
            },
            "extrapolation": (
                f"yes: output spacing {out_spacing:.4g} is finer than the training targets' {finest}"
                if extrapolating and finest is not None
                else ("unknown: the run records no training spacing" if finest is None else "no")
            ),
            "consistency": cons,
            "speed": {"seconds": round(seconds, 2), "torch_compile": speed},
        }


def render_file(
    input_path: str | Path,
    run: str | Path,
    out: str | Path,
    request: TransformRequest,
    checkpoint: int | None = None,
    base: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> RenderResult:
    """``sarviz render``: read, render, write the COG (atomically: nothing half-written on failure)."""
    img = SarGeoTiff.read(input_path)
    renderer = Sar2SarRenderer(run, checkpoint, base)
    result = renderer.render(img, request, progress)
    result.output.write(out)
    return result


def _register() -> None:
    register_kind("sar2sar", Sar2SarRenderer.from_card)


_register()
