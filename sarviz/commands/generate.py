"""`sarviz generate` (a synthetic Sentinel-1 GeoTIFF for a point) and `sarviz models`."""

from __future__ import annotations

import argparse
import json
import sys

from sarviz.errors import CliError
from sarviz.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate a synthetic Sentinel-1 VV/VH GeoTIFF for a point",
        description="Look up the scene at LAT/LON, run a generator on it and write a GeoTIFF (bands VV, VH in dB "
                    "on the scene's grid, provenance in the tags). The provenance is printed as one JSON object.")
    p.add_argument("--lat", required=True, help="latitude in degrees")
    p.add_argument("--lon", required=True, help="longitude in degrees")
    p.add_argument("--scenes", default=None, help="scene folder (default: SARVIZ_SCENES or ~/.sarviz/scenes)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model card id (see `sarviz models`)")
    which.add_argument("--controlnet", metavar="DIR", help="a ControlNet checkpoint folder (published layout)")
    p.add_argument("--base", metavar="DIR", help="base Stable Diffusion 1.5 folder or Hugging Face id (with --controlnet)")
    p.add_argument("--vae", metavar="DIR", help="VAE folder or Hugging Face id overriding the base VAE (with --controlnet)")
    p.add_argument("--lora", metavar="DIR", default="unet_lora",
                   help="UNet LoRA folder (default: unet_lora inside the ControlNet folder; 'none' for no LoRA)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow loading .bin pickle weights (they can run code: only for files you trust)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same image)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model card's)")
    p.add_argument("--reference-settings", action="store_true",
                   help="the published inference settings (50 steps, float32) instead of the card's fast defaults; "
                        "explicit --steps/--dtype still win (the result then records preset 'custom')")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--controlnet-scale", type=float, default=None, help="ControlNet conditioning scale")
    p.add_argument("--angle", type=float, default=None,
                   help="incidence angle in degrees, used where the scene has no angle layer (default 37.5)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: SARVIZ_DEVICE or the best available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="weights precision (default: the fastest safe one for the device)")
    p.add_argument("--size", type=int, default=512, help="patch size in pixels (default 512)")
    p.add_argument("--image-size", type=int, default=None,
                   help="diffusion model resolution in pixels, a multiple of 8 (default: the card's, 512 for SD 1.5); "
                        "the result is resampled onto the scene grid either way")
    p.add_argument("--grid", default="native", choices=["native", "utm"],
                   help="native: crop the scene on its own grid; utm: resample to the 10 m local UTM patch grid")
    p.add_argument("--out", required=True, help="output GeoTIFF path")
    p.add_argument("--png", default=None, help="also write a PNG preview (R=VV, G=VH) here")
    p.set_defaults(func=run_generate)

    p = sub.add_parser("models", help="list model cards and whether their weights are present")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.add_argument("--details", action="store_true",
                   help="for models that cannot run: every missing file and how to get the weights")
    p.set_defaults(func=run_models)


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
    if not args.base:
        raise CliError("--controlnet needs --base (a Stable Diffusion 1.5 folder or Hugging Face id)")
    from sarviz.generators.diffusion import checkpoint_card

    template = registry.cards.get("huiyanearth-sar")  # sampler/preprocessing/output defaults
    lora = None if str(args.lora).lower() == "none" else args.lora
    card = checkpoint_card(args.controlnet, args.base, vae=args.vae, unet_lora=lora,
                           allow_pickle=args.allow_pickle, template=template)
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
    generator = _generator(args)
    if args.allow_pickle and args.model:
        raise CliError("--allow-pickle goes with --controlnet; for a card set \"allow_pickle\": true in its weights")
    store = SceneStore(args.scenes or settings.scenes)
    for problem in store.problems:  # a bad file is skipped with its reason; the rest of the folder works
        print(f"skipped {problem}", file=sys.stderr)
    scene = store.lookup(args.lat, args.lon, size_px=args.size, grid=args.grid)
    device = args.device or (None if settings.device == "auto" else settings.device)
    request = GenerationRequest(seed=args.seed, steps=args.steps, guidance=args.guidance,
                                controlnet_scale=args.controlnet_scale, angle_deg=args.angle,
                                device=device, dtype=args.dtype,
                                preset="reference" if args.reference_settings else None)
    from sarviz.commands import cli_progress

    progress = cli_progress(generator.model_id)

    print(f"[{generator.model_id}] scene {scene.scene_id} ({scene.width}x{scene.height}, {scene.crs})",
          file=sys.stderr)
    result = generator.generate(scene, request, progress=progress)
    writes = [(out, result.to_geotiff)]
    if args.png:
        png = result.png_bytes()
        writes.append((Path(args.png), lambda p: _write_bytes_atomically(p, png)))
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


def run_models(args: argparse.Namespace) -> int:
    from sarviz.generators.runtime import card_readiness
    from sarviz.registry import ModelRegistry

    registry = ModelRegistry()
    for problem in registry.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not registry.cards:
        raise CliError(f"no model cards in {', '.join(str(f) for f in registry.folders)}")
    hidden = False
    for card in registry.cards.values():
        state = card_readiness(card)
        problem = state.message
        short = state.problem if problem and state.problem != problem else None
        if args.json:
            print(json.dumps({"id": card.id, "name": card.name, "kind": card.kind, "card": str(card.path),
                              "ready": problem is None, "problem": problem, "licence": card.get("licence")}))
        else:
            state = "ready" if problem is None else "weights missing"
            print(f"{card.id:<20} {card.kind:<16} {state:<16} {card.name}")
            if problem:
                print(f"    {problem if args.details or not short else short}")
                hidden = hidden or bool(short and not args.details)
    if hidden:
        print("(`sarviz models --details` lists the missing files and how to get the weights)")
    return 0
