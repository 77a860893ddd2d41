"""`sarviz generate`: a synthetic Sentinel-1 GeoTIFF for a point (`sarviz models` lives in models.py)."""

from __future__ import annotations

import argparse
import json
import sys

from sarviz.errors import CliError
from sarviz.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate a synthetic Sentinel-1 VV/VH GeoTIFF for a point",
        description="Look up the scene at LAT/LON, run a generator on it and write a GeoTIFF (bands VV, VH in dB "
        "on the scene's grid, provenance in the tags). The provenance is printed as one JSON object.",
    )
    p.add_argument("--lat", help="latitude in degrees")
    p.add_argument("--lon", help="longitude in degrees")
    p.add_argument(
        "--place",
        help="a town, region or country from the offline gazetteer instead of --lat/--lon "
        "(prints what it resolved to; a name several countries share must be qualified: "
        '"Punjab, Pakistan")',
    )
    p.add_argument("--scenes", default=None, help="scene folder (default: SARVIZ_SCENES or ~/.sarviz/scenes)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model card id (see `sarviz models`)")
    which.add_argument("--controlnet", metavar="DIR", help="a ControlNet checkpoint folder (published layout)")
    which.add_argument(
        "--weights",
        metavar="RUN",
        help="a run folder of `sarviz train geo` (with --base; its latest checkpoint unless --checkpoint N)",
    )
    p.add_argument("--checkpoint", type=int, default=None, metavar="N", help="with --weights: checkpoint-N of the run")
    p.add_argument(
        "--base", metavar="DIR", help="base Stable Diffusion 1.5 folder or Hugging Face id (with --controlnet)"
    )
    p.add_argument(
        "--vae", metavar="DIR", help="VAE folder or Hugging Face id overriding the base VAE (with --controlnet)"
    )
    p.add_argument(
        "--lora",
        metavar="DIR",
        default="unet_lora",
        help="UNet LoRA folder (default: unet_lora inside the ControlNet folder; 'none' for no LoRA)",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow loading .bin pickle weights (they can run code: only for files you trust)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same image)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model card's)")
    p.add_argument(
        "--reference-settings",
        action="store_true",
        help="the published inference settings (50 steps, float32) instead of the card's fast defaults; "
        "explicit --steps/--dtype still win (the result then records preset 'custom')",
    )
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--controlnet-scale", type=float, default=None, help="ControlNet conditioning scale")
    p.add_argument(
        "--angle",
        type=float,
        default=None,
        help="incidence angle in degrees, used where the scene has no angle layer (default 37.5)",
    )
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:N or mps (default: SARVIZ_DEVICE or the best available)"
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="weights precision (default: the fastest safe one for the device)",
    )
    p.add_argument("--size", type=int, default=512, help="patch size in pixels (default 512)")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="diffusion model resolution in pixels, a multiple of 8 (default: the card's, 512 for SD 1.5); "
        "the result is resampled onto the scene grid either way",
    )
    p.add_argument(
        "--grid",
        default="native",
        choices=["native", "utm"],
        help="native: crop the scene on its own grid; utm: resample to the 10 m local UTM patch grid",
    )
    p.add_argument("--out", required=True, help="output GeoTIFF path")
    p.add_argument("--no-png", action="store_true", help="write only the GeoTIFF (default: also OUT.png, R=VV, G=VH)")
    # the old opt-in `--png PATH` (a preview at another path): hidden, with a notice
    p.add_argument("--png", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run_generate)


def _where(args: argparse.Namespace) -> tuple:
    """(lat, lon, the Place or None): --lat/--lon, or --place through the offline gazetteer (exclusive)."""
    if args.place is not None:
        if args.lat is not None or args.lon is not None:
            raise CliError("give either --place or --lat/--lon, not both")
        from sarviz.commands.fetch import resolve_place

        place = resolve_place(args.place)
        return place.lat, place.lon, place
    if args.lat is None or args.lon is None:
        raise CliError("give the point: --lat and --lon, or --place NAME")
    return args.lat, args.lon, None


def _lookup_near(store, lat, lon, place, args):
    """The scene at the point; for a named place no scene covers, the nearest scene within the
    place's reach (:func:`sarviz.gazetteer.scene_reach_km`: a town ~10 km, a region 150 km), said so."""
    from sarviz.store import NoSceneHere

    try:
        return store.lookup(lat, lon, size_px=args.size, grid=args.grid)
    except NoSceneHere:
        from sarviz.gazetteer import scene_reach_km

        near = store.nearest(lat, lon, k=1) if place is not None else []
        if not near or near[0][1] > scene_reach_km(place):
            raise
        entry, km = near[0]
        print(
            f"--place: no scene covers {lat:.5f}, {lon:.5f}; using the nearest scene {entry.scene_id}, "
            f"{km:.1f} km away",
            file=sys.stderr,
        )
        clat, clon = entry.center_latlon
        return store.lookup(clat, clon, size_px=args.size, grid=args.grid, scene_id=entry.scene_id)


def _generator(args: argparse.Namespace):
    from sarviz.registry import ModelRegistry, build_generator

    registry = ModelRegistry()
    if args.model:
        if args.base or args.vae:
            raise CliError("--base and --vae go with --controlnet; a model card names its own base and VAE")
        card = registry.card(args.model)
        if args.image_size is not None:
            if card.kind != "controlnet-lora":
                raise CliError(f"--image-size applies to diffusion models; {card.id} is a {card.kind} model")
            card = _with_image_size(card, args.image_size)
        return build_generator(card)
    if args.weights:
        from sarviz.commands.models import run_checkpoint

        args.controlnet = str(run_checkpoint(args.weights, args.checkpoint))
    elif args.checkpoint is not None:
        raise CliError("--checkpoint goes with --weights RUN")
    if not args.base:
        raise CliError(
            f"{'--weights' if args.weights else '--controlnet'} needs --base (a Stable Diffusion 1.5 folder or Hugging Face id)"
        )
    from sarviz.generators.diffusion import checkpoint_card

    template = registry.cards.get("huiyanearth-sar")  # sampler/preprocessing/output defaults
    lora = None if str(args.lora).lower() == "none" else args.lora
    card = checkpoint_card(
        args.controlnet, args.base, vae=args.vae, unet_lora=lora, allow_pickle=args.allow_pickle, template=template
    )
    if args.image_size is not None:
        card = _with_image_size(card, args.image_size)
    return build_generator(card)


def _with_image_size(card, size: int):
    """The card with its condition/image size replaced (a copy; the card file is not touched)."""
    import copy

    from sarviz.registry import ModelCard

    data = copy.deepcopy(card.data)
    data["preprocessing"] = {**data.get("preprocessing", {}), "size": size}
    return ModelCard(id=card.id, name=card.name, kind=card.kind, path=card.path, data=data)


def run_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sarviz.generators.base import GenerationRequest
    from sarviz.store import SceneStore

    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise CliError(f"--out must be a .tif file, got {out}")
    settings = Settings.load()
    lat, lon, place = _where(args)  # before loading a model: a bad place fails fast
    generator = _generator(args)
    if args.allow_pickle and args.model:
        raise CliError('--allow-pickle goes with --controlnet; for a card set "allow_pickle": true in its weights')
    store = SceneStore(args.scenes or settings.scenes)
    for problem in store.problems:  # a bad file is skipped with its reason; the rest of the folder works
        print(f"skipped {problem}", file=sys.stderr)
    scene = _lookup_near(store, lat, lon, place, args)
    device = args.device or (None if settings.device == "auto" else settings.device)
    request = GenerationRequest(
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        controlnet_scale=args.controlnet_scale,
        angle_deg=args.angle,
        device=device,
        dtype=args.dtype,
        preset="reference" if args.reference_settings else None,
    )
    from sarviz.commands import cli_progress

    progress = cli_progress(generator.model_id)

    print(f"[{generator.model_id}] scene {scene.scene_id} ({scene.width}x{scene.height}, {scene.crs})", file=sys.stderr)
    result = generator.generate(scene, request, progress=progress)
    writes = [(out, result.to_geotiff)]
    if args.png:
        print("sarviz generate: --png PATH is deprecated: OUT.png is written unless --no-png", file=sys.stderr)
    if args.png or not args.no_png:
        png = result.png_bytes()
        writes.append(
            (Path(args.png) if args.png else out.with_suffix(".png"), lambda p: _write_bytes_atomically(p, png))
        )
    for path, write in writes:
        try:  # atomic: a full disk or a read-only folder keeps an existing file as it was
            write(path)
        except (OSError, rasterio_errors()) as exc:
            raise CliError(f"cannot write {path}: {_cause(exc)}; an existing file there is unchanged") from None
    print(f"[{generator.model_id}] wrote {out}", file=sys.stderr)
    print(json.dumps(result.provenance, sort_keys=True, default=str))
    return 0


def _write_bytes_atomically(path, data: bytes) -> None:  # noqa: ANN001
    from sarviz.atomic import atomic_path

    with atomic_path(path, suffix=".part") as tmp:
        tmp.write_bytes(data)


def rasterio_errors() -> type[Exception]:
    from rasterio.errors import RasterioError

    return RasterioError


def _cause(exc: BaseException) -> str:
    """The cause of a failed write in a few words (no temporary file names)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text.split(": ")[-1] if ": " in text else (text or type(exc).__name__)


from sarviz.commands.models import run_models, run_models_add  # noqa: E402,F401  (their old home)
