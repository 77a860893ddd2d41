"""Seed 003 stage 2: migrate a SAR image toward a target sensor by attention distillation.

Per image, the VAE latent of the content image is optimised (Adam) so that the U-Net's
self-attention, evaluated on it, looks like that of the target sensor's reference(s):

    L = L_AD + w_cnt · L_cnt + w_sp · L_sp + w_f · L_f        (defaults 1, 0.25, 0.1, 0.1; seed 003)

Schedule (the public AD code's ``optimize``; the paper gives none): the latent starts at the
content's latent; for each of ``steps`` DDIM timesteps (999 → 0), ``iters`` Adam iterations
(lr 0.05) score the **current latent as it is** at that timestep — no noise is added and
nothing is denoised; the timestep only changes which features the U-Net computes. Style
and content features are computed at the same timestep without gradients, from the clean
latents. The null-text embedding conditions every U-Net call.

L_sp and L_f are defined on the image, so the latent is decoded by the VAE **with
gradients** — the most expensive part at 512² (a decoder forward + backward costs ~2–3× the
U-Net pass of SD 1.5). ``decode_every`` K applies them every K-th iteration (and the other
iterations use L_AD + L_cnt only); ``decode_crop`` decodes a random ``c``×``c`` latent crop
(8c px) instead of the whole latent — pixel statistics are kept (no resampling), the
decoder's mid-block attention then sees only the crop.

:func:`migrate_image` is the library entry; :class:`AttentionDistillationMigrator` is the
image transformer in the core's terms (``transform(source, request, progress, cancel)``).
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.errors import GenerationError, SarvizError
from sarviz.formats.model_card import CARD_FILE
from sarviz.generators import runtime
from sarviz.generators.base import GenerationResult, ImageTransformer, ProgressCallback, Readiness, TransformRequest
from sarviz.generators.base_model import base_kind
from sarviz.generators.run import RunContext, RunRecord, check_seed, run_generation
from sarviz.generators.runtime import check_cancel, choose_device, dtype_decision, report, torch_dtype
from sarviz.migration import losses as L
from sarviz.migration.attention import AttentionFeatures, choose_layers, install_cache
from sarviz.migration.images import SarAmplitude, list_images, normalise_amplitude, read_sar_image
from sarviz.migration.settings import MigrationSettings
from sarviz.registry import ModelCard, register_kind

METHOD = "attention distillation (Zhou et al. CVPR 2025) + speckle/spectrum losses (seed 003)"


@dataclass
class MigrationOutcome:
    amplitude: np.ndarray  # (H, W) float32 normalised amplitude
    losses: list[dict[str, float]]  # one dict per iteration
    provenance: dict[str, Any] = field(default_factory=dict)


class FeatureExtractor:
    """A user-given SD-style base (``model_index.json`` with unet, vae, text_encoder, tokenizer, scheduler)."""

    def __init__(
        self, base: str | Path, layers: str = "ad-default", device: str | None = None, dtype: str | None = None
    ) -> None:
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        base = Path(base)
        try:
            base_kind(base, supported=("sd15",))  # the one rule (an SD 1.5-style UNet pipeline)
        except SarvizError as exc:
            raise GenerationError(
                f"{base.name}: not a diffusers SD 1.5-style U-Net base ({str(exc).splitlines()[0]}); "
                "migration needs a pre-trained base you provide"
            ) from None
        self.base = base
        self.device = choose_device(device)
        decision = dtype_decision(self.device, dtype)
        self.dtype_name = decision.dtype
        self.dtype_method = decision.method
        self.torch_dtype = torch_dtype(self.dtype_name)
        kw = {"dtype": self.torch_dtype}
        self.unet = UNet2DConditionModel.from_pretrained(base / "unet", **kw).to(self.device).eval()
        self.vae = AutoencoderKL.from_pretrained(base / "vae", **kw).to(self.device).eval()
        for model in (self.unet, self.vae):
            model.requires_grad_(False)
        self.layers = choose_layers(self.unet, layers)
        self.cache = install_cache(self.unet, self.layers)
        if (base / "text_encoder").is_dir():
            tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer")
            text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder", **kw).to(self.device)
            ids = tokenizer(
                [""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
            ).input_ids.to(self.device)
            with torch.no_grad():
                self.null_embeds = text_encoder(ids)[0]
            del text_encoder
        else:
            raise GenerationError(f"{base.name}: no text_encoder/ — the null-text embedding conditions the U-Net")
        self.scheduler = DDIMScheduler.from_pretrained(base / "scheduler")
        self._finish()

    def use_layers(self, layers: str) -> None:
        """Cache the attention of ``layers`` from now on (cheap: swaps attention processors)."""
        chosen = choose_layers(self.unet, layers)
        if chosen != self.layers:
            self.layers = chosen
            self.cache = install_cache(self.unet, chosen)

    def _finish(self) -> None:
        self.scaling = float(getattr(self.vae.config, "scaling_factor", 0.18215))
        self.multiple = 2 ** (len(self.vae.config.block_out_channels) - 1) * 2 ** (
            len(self.unet.config.block_out_channels) - 1
        )

    @classmethod
    def from_components(
        cls,
        unet,
        vae,
        null_embeds,
        scheduler,
        layers: str = "ad-default",
        device: str = "cpu",
        dtype: str = "float32",
        name: str = "in-memory",
    ) -> FeatureExtractor:
        """An extractor on models already in memory (benchmarks on random weights from configs)."""

        self = cls.__new__(cls)
        self.base, self.device, self.dtype_name, self.dtype_method = Path(name), device, dtype, "user"
        self.torch_dtype = torch_dtype(dtype)
        self.unet = unet.to(device, self.torch_dtype).eval().requires_grad_(False)
        self.vae = vae.to(device, self.torch_dtype).eval().requires_grad_(False)
        self.layers = choose_layers(self.unet, layers)
        self.cache = install_cache(self.unet, self.layers)
        self.null_embeds, self.scheduler = null_embeds.to(device, self.torch_dtype), scheduler
        self._finish()
        return self

    # -- images ↔ latents -----------------------------------------------------------------------
    def encode(self, amplitudes: np.ndarray):
        """(B, H, W) normalised amplitude → latents (B, 4, H/8, W/8), float32, no gradient."""
        import torch

        x = torch.as_tensor(np.asarray(amplitudes, dtype=np.float32), device=self.device)
        x = (x * 2.0 - 1.0)[:, None].expand(-1, 3, -1, -1).to(self.torch_dtype)
        with torch.no_grad():
            latent = self.vae.encode(x).latent_dist.mean * self.scaling
        return latent.float()

    def decode(self, latent):
        """Latents → (B, H, W) normalised amplitude (channel mean of the RGB decode), differentiable."""
        x = self.vae.decode((latent / self.scaling).to(self.torch_dtype)).sample.float()
        return ((x + 1.0) * 0.5).mean(dim=1)

    def features(self, latent, t) -> AttentionFeatures:
        self.cache.clear()
        self.cache.recording = True
        try:
            embeds = self.null_embeds.expand(latent.shape[0], -1, -1)
            self.unet(latent.to(self.torch_dtype), t, encoder_hidden_states=embeds, return_dict=False)
        finally:
            self.cache.recording = False
        return self.cache.snapshot()


def check_images(content: SarAmplitude, styles: list[SarAmplitude], multiple: int) -> None:
    h, w = content.shape
    if h % multiple or w % multiple:
        raise GenerationError(
            f"content {content.path.name if content.path else ''} is {h}×{w} px; migration needs "
            f"sides that are multiples of {multiple} px for this base (crop it)"
        )
    for s in styles:
        if s.shape != content.shape:
            name = s.path.name if s.path else "style reference"
            raise GenerationError(
                f"style reference {name} is {s.shape[0]}×{s.shape[1]} px but the content is "
                f"{h}×{w} px; give references of the content's size"
            )


def migrate_image(
    content: SarAmplitude,
    styles: list[SarAmplitude],
    extractor: FeatureExtractor,
    settings: MigrationSettings | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> MigrationOutcome:
    """Migrate one content image toward the style references (see module doc)."""
    import torch

    settings = (settings or MigrationSettings()).check()
    if not styles:
        raise GenerationError("migration needs at least one style reference of the target sensor")
    check_images(content, styles, extractor.multiple)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    dev = extractor.device
    size = settings.patch_size
    content_corners = L.homogeneous_patch_corners(content.amplitude, size)
    style_corners = [L.homogeneous_patch_corners(s.amplitude, size) for s in styles]
    style_amp = [torch.as_tensor(s.amplitude, device=dev) for s in styles]
    content_latent = extractor.encode(content.amplitude[None])
    style_latent = extractor.encode(np.stack([s.amplitude for s in styles]))
    latent = content_latent.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=settings.learning_rate)
    extractor.scheduler.set_timesteps(settings.steps)
    timesteps = extractor.scheduler.timesteps
    use_image_losses = settings.w_sp > 0 or settings.w_f > 0
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    iteration = 0
    for step, t in enumerate(timesteps):
        check_cancel(cancel)
        with torch.no_grad():
            style_feats = extractor.features(style_latent, t)
            content_feats = extractor.features(content_latent, t) if settings.w_cnt > 0 else None
        for _ in range(settings.iters):
            optimiser.zero_grad(set_to_none=True)
            current = extractor.features(latent, t)
            l_ad = L.ad_loss(current, style_feats)
            total = settings.w_ad * l_ad
            row = {"step": step, "t": int(t), "L_AD": float(l_ad.detach())}
            if content_feats is not None:
                l_cnt = L.content_loss(current, content_feats)
                total = total + settings.w_cnt * l_cnt
                row["L_cnt"] = float(l_cnt.detach())
            if use_image_losses and iteration % settings.decode_every == 0:
                l_sp, l_f = _image_losses(extractor, latent, style_amp, content_corners, style_corners, settings, rng)
                if l_sp is not None:
                    total = total + settings.w_sp * l_sp
                    row["L_sp"] = float(l_sp.detach())
                total = total + settings.w_f * l_f
                row["L_f"] = float(l_f.detach())
            row["total"] = float(total.detach())
            total.backward()
            optimiser.step()
            history.append(row)
            iteration += 1
        elapsed = time.perf_counter() - started
        report(
            progress,
            step + 1,
            len(timesteps),
            f"migration step {step + 1}/{len(timesteps)}, loss {history[-1]['total']:.4g}, "
            f"about {elapsed / (step + 1) * (len(timesteps) - step - 1):.0f} s left",
        )
    with torch.no_grad():
        amplitude = extractor.decode(latent.detach())[0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
    provenance = {
        "method": METHOD,
        "settings": asdict(settings),
        "layers": extractor.layers,
        "base": extractor.base.name,
        "device": extractor.device,
        "dtype": extractor.dtype_name,
        "dtype_method": extractor.dtype_method,
        "seed": seed,
        "content": {
            "file": content.path.name if content.path else None,
            "sha256": content.sha256,
            "threshold_mu_plus_3sigma": content.threshold,
        },
        "style_references": [{"file": s.path.name if s.path else None, "sha256": s.sha256} for s in styles],
        "losses": history,
        "seconds": round(time.perf_counter() - started, 3),
        "normalisation": "amplitude / (mu + 3 sigma) clipped to [0, 1] (seed 001), per image",
        "speckle_loss": "log-ENL of linear intensity on homogeneous patches (deviation from the paper's raw ENL)",
        "spectrum_loss": "L1 of orthonormal FFT magnitudes beyond hf_radius x Nyquist (paper: complex spectra)",
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return MigrationOutcome(amplitude, history, provenance)


def _image_losses(extractor, latent, style_amp, content_corners, style_corners, settings, rng):
    """(L_sp or None when no homogeneous patch lies in the decoded crop, L_f) on the decoded latent."""
    import torch

    size = settings.patch_size
    crop = settings.decode_crop
    lh, lw = latent.shape[-2:]
    if crop and crop < min(lh, lw):
        r0, c0 = int(rng.integers(0, lh - crop + 1)), int(rng.integers(0, lw - crop + 1))
        decoded = extractor.decode(latent[:, :, r0 : r0 + crop, c0 : c0 + crop])[0]
        f = decoded.shape[-1] // crop  # VAE scale factor
        box = (r0 * f, c0 * f, crop * f, crop * f)
    else:
        decoded = extractor.decode(latent)[0]
        box = (0, 0, decoded.shape[0], decoded.shape[1])
    y0, x0, bh, bw = box
    styles = [s[y0 : y0 + bh, x0 : x0 + bw] for s in style_amp]

    def inside(corners: np.ndarray) -> np.ndarray:
        ok = (
            (corners[:, 0] >= y0)
            & (corners[:, 0] + size <= y0 + bh)
            & (corners[:, 1] >= x0)
            & (corners[:, 1] + size <= x0 + bw)
        )
        return corners[ok] - np.array([y0, x0])

    def draw(corners: np.ndarray):
        pick = rng.choice(len(corners), size=min(settings.patches, len(corners)), replace=False)
        return torch.as_tensor(corners[np.sort(pick)], device=decoded.device, dtype=torch.long)

    l_sp = None
    opt_c = inside(content_corners)
    sty_c = [inside(c) for c in style_corners]
    if len(opt_c) and all(len(c) for c in sty_c):
        l_sp = L.speckle_loss(decoded, draw(opt_c), styles, [draw(c) for c in sty_c], size)
    l_f = L.spectrum_loss(decoded, styles, settings.hf_radius)
    return l_sp, l_f


# -- the image transformer (core interface) ---------------------------------------------------------
KIND = "ad-migration"
#: request.options keys besides MigrationSettings' fields
EXTRA_OPTIONS = ("polarisations", "references")


@dataclass
class LoadedMigration:
    """The cached feature extractor of one base on one device/dtype; ``lock`` held while it works."""

    extractor: FeatureExtractor
    info: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def migration_settings(request: TransformRequest, defaults: MigrationSettings | None = None) -> MigrationSettings:
    """The run's :class:`MigrationSettings`: ``defaults`` (the card's), the request's ``options``
    (any MigrationSettings field), then ``request.steps`` (DDIM timesteps); checked."""
    options = {k: v for k, v in dict(request.options or {}).items() if k not in EXTRA_OPTIONS}
    known = set(MigrationSettings.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise GenerationError(
            f"unknown migration option(s) {', '.join(unknown)}; known: {', '.join(sorted(known | set(EXTRA_OPTIONS)))}"
        )
    try:
        settings = replace(defaults or MigrationSettings(), **options)
        if request.steps is not None:
            settings = replace(settings, steps=int(request.steps))
    except (TypeError, ValueError) as exc:
        raise GenerationError(f"bad migration option ({exc})") from None
    return settings.check()


def content_from_db(db: np.ndarray, what: str) -> SarAmplitude:
    """A dB band (NaN = missing) as the content of one migration (seed 001's A/(μ+3σ) via sarviz.amplitude)."""
    norm, threshold = normalise_amplitude(np.power(10.0, np.asarray(db, dtype=np.float64) / 20.0), what)
    return SarAmplitude(norm, threshold)


def source_from_content(content: SarAmplitude, provenance: dict[str, Any] | None = None) -> GenerationResult:
    """A content image read from a file as the transformer's source: its dB (on its own amplitude
    scale) as VV, its georeference when it has one."""
    prov = {
        "source": "file",
        "content": {"file": content.path.name if content.path else None, "sha256": content.sha256},
        **(provenance or {}),
    }
    return GenerationResult(
        content.db(), None, content.crs, content.transform if content.crs is not None else None, prov
    )


class AttentionDistillationMigrator(ImageTransformer):
    """SAR → target-sensor SAR by attention distillation (seed 003 stage 2): an image transformer.

    Card (kind ``ad-migration``)::

        {"id": "...", "kind": "ad-migration", "weights": {"base": "SD15_BASE"},
         "style_references": ["FOLDER_OR_FILE", ...], "settings": {MigrationSettings fields}}

    ``transform(source, request)`` migrates each polarisation of ``source`` (``options
    ["polarisations"]``, default every band present) as its own optimisation, through
    :func:`~sarviz.generators.run.run_generation` (one step = one DDIM timestep of one band).
    ``request.options`` may hold any :class:`MigrationSettings` field and ``references``
    (paths, or :class:`SarAmplitude` s already read, overriding the card's); ``request.steps`` sets the timesteps; ``strength``,
    ``guidance`` and ``prompt`` do not apply (null-text conditioning, the whole schedule runs).
    A source without georeference is accepted (seed 003's chips have none); the result keeps
    the source's grid and georeference, whatever it is.
    """

    kind = "attention-distillation migration"

    def __init__(self, card: Any) -> None:
        super().__init__(card)
        weights = card.get("weights", {}) or {}
        if not isinstance(weights, dict) or not weights.get("base"):
            raise GenerationError(f"model card {card.path}: weights.base (an SD 1.5-style diffusers base) is required")
        self.base = card.resolve(weights["base"])
        refs = card.get("style_references", []) or []
        if isinstance(refs, str):
            refs = [refs]
        self.style_references = [card.resolve(r) for r in refs]
        try:
            self.settings_defaults = replace(MigrationSettings(), **(card.get("settings", {}) or {})).check()
        except TypeError as exc:
            raise GenerationError(f"model card {card.path}: bad settings ({exc})") from None

    def readiness(self) -> Readiness:
        problems = []
        base = Path(self.base)
        try:
            base_kind(base, supported=("sd15",))
            if not (base / "unet").is_dir() or not (base / "text_encoder").is_dir():
                problems.append(f"{base.name}: unet/ and text_encoder/ are needed")
        except SarvizError as exc:
            problems.append(str(exc).splitlines()[0])
        missing_refs = [Path(r).name for r in self.style_references if not Path(r).exists()]
        if missing_refs:
            problems.append(f"style references missing: {', '.join(missing_refs)}")
        if not problems:
            return Readiness.ok()
        short = f"{self.card.id!r} cannot run: its U-Net base or style references are missing"
        return Readiness(
            False,
            problem=short,
            action="give a pre-trained SD 1.5-style base you provide (no weights "
            "ship) and the target sensor's reference images",
            details=f"{short} — " + "; ".join(problems),
            missing=tuple(problems),
        )

    def load(self, device: str, dtype: str, progress: ProgressCallback | None = None) -> LoadedMigration:
        key = ((KIND, self.base), device, dtype)
        return runtime.MODELS.get(
            key,
            lambda: LoadedMigration(
                FeatureExtractor(self.base, self.settings_defaults.layers, device, dtype),
                info={"base": Path(self.base).name},
            ),
        )

    def references(self, request: TransformRequest) -> list[SarAmplitude]:
        refs = request.options.get("references") or self.style_references
        if not refs:
            raise GenerationError("migration needs at least one style reference of the target sensor")
        if isinstance(refs, (list, tuple)) and all(isinstance(r, SarAmplitude) for r in refs):
            return list(refs)  # already read (the Sensor page's job crops them first)
        return [read_sar_image(p, "style reference") for p in list_images(refs, "style references")]

    def transform(
        self,
        source: GenerationResult,
        request: TransformRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Migrate each polarisation of ``source`` toward the references (see the class doc)."""

        if not isinstance(source, GenerationResult):
            raise GenerationError("migration transforms a SAR image (a GenerationResult), not a scene or a prompt")
        seed = check_seed(request.seed)
        settings = migration_settings(request, self.settings_defaults)
        bands = source.bands
        pols = list(request.options.get("polarisations") or bands)
        absent = [p for p in pols if p not in bands]
        if absent:
            raise GenerationError(f"the source has no {', '.join(absent)} band (it has {', '.join(bands)})")
        self.check_ready()
        styles = self.references(request)
        contents = {pol: content_from_db(bands[pol], f"source {pol}") for pol in pols}
        steps = settings.steps

        def work(ctx: RunContext) -> dict[str, MigrationOutcome]:
            extractor: FeatureExtractor = ctx.loaded.extractor
            extractor.use_layers(settings.layers)
            outcomes = {}
            for i, pol in enumerate(pols):

                def sub_progress(step: int, _total: int, message: str, _i: int = i, _pol: str = pol) -> None:
                    ctx.step(_i * steps + step, f"{_pol}: {message}")

                outcomes[pol] = migrate_image(
                    contents[pol], styles, extractor, settings, seed, sub_progress, ctx.cancel
                )
            return outcomes

        def finish(outcomes: dict[str, MigrationOutcome], record: RunRecord) -> list[GenerationResult]:
            out = dict(bands)
            runs = {}
            for pol, outcome in outcomes.items():
                out[pol] = denormalised_db(outcome.amplitude, contents[pol].threshold)
                runs[pol] = {
                    k: v
                    for k, v in outcome.provenance.items()
                    if k not in ("device", "dtype", "dtype_method", "seed", "timestamp")
                }
            provenance = {k: v for k, v in source.provenance.items() if k in ("calibration", "scene_id", "source")}
            provenance.update(
                {
                    "model_id": self.model_id,
                    "model_name": self.card.name,
                    "model_kind": KIND,
                    "seed": seed,
                    "method": METHOD,
                    "base": Path(self.base).name,
                    "source_model_id": source.provenance.get("model_id"),
                    "source_provenance": {k: v for k, v in source.provenance.items() if k != "migration"},
                    "polarisations_migrated": pols,
                    "settings": asdict(settings),
                    "migration": runs,
                    "units": "dB on the source's own amplitude scale (its μ+3σ restored after migration)",
                }
            )
            return [GenerationResult(out["VV"], out.get("VH"), source.crs, source.transform, provenance)]

        return run_generation(
            self,
            request,
            total=len(pols) * steps,
            work=work,
            finish=finish,
            progress=progress,
            cancel=cancel,
            dtype=request.dtype,
        )[0]


def denormalised_db(amplitude: np.ndarray, threshold: float) -> np.ndarray:
    """dB of a migrated normalised amplitude times the content's μ+3σ (NaN where it is 0)."""
    with np.errstate(divide="ignore"):
        return np.where(amplitude > 0, 20.0 * np.log10(amplitude * threshold), np.nan).astype(np.float32)


def migration_card(
    base: str | Path,
    style_references: list[str] | None = None,
    settings: dict[str, Any] | None = None,
    card_id: str = "ad-migration",
) -> Any:
    """An in-memory card for a base given on the command line or the Sensor page."""
    base_abs = str(Path(base).expanduser().resolve())
    name = "Attention-distillation migration (seed 003)"
    data: dict[str, Any] = {
        "id": card_id,
        "name": name,
        "kind": KIND,
        "weights": {"base": base_abs},
        "style_references": [str(Path(r).expanduser().resolve()) for r in (style_references or [])],
        "settings": settings or {},
    }
    # an in-memory card claims a card path beside the base (never written), as text.run_card does
    return ModelCard(id=card_id, name=name, kind=KIND, path=Path(base_abs) / CARD_FILE, data=data)


def MigrationCard(base: str, style_references: list[str], **_: Any) -> Any:  # noqa: N802 - former class name
    """The former local card (kept importable): :func:`migration_card`."""
    return migration_card(base, style_references)


def migrated_image(content: SarAmplitude, outcome: MigrationOutcome) -> GenerationResult:
    """A migration's result as the one generated-image artifact: VV dB on the content's scale, its georeference."""
    return GenerationResult(
        denormalised_db(outcome.amplitude, content.threshold),
        None,
        content.crs,
        content.transform if content.crs is not None else None,
        outcome.provenance,
    )


register_kind(KIND, AttentionDistillationMigrator)
