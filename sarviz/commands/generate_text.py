"""`sarviz generate-text`: a synthetic SAR image from a prompt (text-to-SAR, seed 001)."""

from __future__ import annotations

import argparse
import json
import sys

from sarviz.errors import CliError
from sarviz.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate-text",
        help="generate a synthetic SAR image from a text prompt",
        description="Run a text-to-SAR model (a card of kind text-to-sar, or a `sarviz train text` run folder) on a "
        "prompt and write a GeoTIFF without georeference (band VV, and VH for two-polarisation models, "
        "in dB; provenance in the tags) plus a PNG beside it. The provenance is printed as JSON: one "
        "object, or one line per image with --num-images.",
    )
    p.add_argument(
        "--prompt",
        required=True,
        help='what to generate, e.g. "a port with ships and a breakwater"; '
        "the model's token (<SAR>) is prepended when missing",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model card id (see `sarviz models`)")
    which.add_argument("--weights", metavar="RUN_DIR", help="a `sarviz train text` output folder")
    p.add_argument(
        "--base",
        metavar="BASE_DIR",
        help="base SD 1.5 / SDXL diffusers folder (with --weights; default: the one the run names)",
    )
    p.add_argument("--negative-prompt", default=None, help="what to avoid (default: the model card's)")
    p.add_argument("--seed", type=int, default=0, help="random seed; image k of --num-images uses seed + k")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the card's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the card's)")
    p.add_argument("--width", type=int, default=None, help="pixels, a multiple of 8 (default: the training resolution)")
    p.add_argument(
        "--height", type=int, default=None, help="pixels, a multiple of 8 (default: the training resolution)"
    )
    p.add_argument(
        "--num-images",
        type=int,
        default=1,
        help="K images with seeds seed … seed+K−1, written as OUT_0.tif … OUT_{K-1}.tif",
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
    p.add_argument("--no-png", action="store_true", help="write only the GeoTIFF(s)")
    p.add_argument("--out", required=True, help="output GeoTIFF path (.tif)")
    p.set_defaults(func=run_generate_text)


def text_generator(model: str | None, weights: str | None, base: str | None):
    """The TextGenerator for --model ID or --weights RUN_DIR [--base BASE_DIR] (shared by the text commands)."""
    from sarviz.generators.text import KIND, TextGenerator, run_card
    from sarviz.generators.text_sd3 import KIND as SD3_KIND
    from sarviz.generators.text_sd3 import SD3TextGenerator, run_is_sd3
    from sarviz.registry import ModelRegistry, build_generator

    registry = ModelRegistry()
    if model:
        if base:
            raise CliError("--base goes with --weights; a model card names its own run and base")
        card = registry.card(model)
        if card.kind not in (KIND, SD3_KIND):
            raise CliError(
                f"{model} is a {card.kind} model; generate-text needs a text-to-sar model "
                f"(cards: {', '.join(c.id for c in registry.cards.values() if c.kind == KIND) or 'none'})"
            )
        return build_generator(card)
    if not weights:
        raise CliError("give --model ID or --weights RUN_DIR")
    if run_is_sd3(weights):  # seed 003 stage 1: an SD3/SD3.5 run (MM-DiT LoRA)
        import dataclasses

        card = run_card(weights, base)  # the seed-001 card's DDPM sampler is not for a flow model
        return SD3TextGenerator(dataclasses.replace(card, kind=SD3_KIND, data={**card.data, "kind": SD3_KIND}))
    return TextGenerator(run_card(weights, base, template=registry.cards.get("text-to-sar")))


def run_generate_text(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sarviz.generators.text import TextRequest, check_size, numbered_paths, prepare_prompt

    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise CliError(f"--out must be a .tif file, got {out}")
    prepare_prompt(args.prompt, "")  # an empty prompt is refused before any model loads
    if args.width is not None or args.height is not None:
        check_size(args.width or 512, args.height or 512)
    if args.num_images < 1:
        raise CliError(f"--num-images must be at least 1, got {args.num_images}")
    settings = Settings.load()
    generator = text_generator(args.model, args.weights, args.base)
    device = args.device or (None if settings.device == "auto" else settings.device)
    request = TextRequest(
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        device=device,
        dtype=args.dtype,
        width=args.width,
        height=args.height,
        num_images=args.num_images,
    )
    from sarviz.commands import cli_progress

    results = generator.generate(request, progress=cli_progress(generator.model_id))
    paths = numbered_paths(out, len(results))
    for result, path in zip(results, paths):
        result.write(path, png=not args.no_png)
    if len(paths) == 1:
        print(f"[{generator.model_id}] wrote {paths[0]}", file=sys.stderr)
    else:
        print(
            f"[{generator.model_id}] wrote {len(paths)} images {paths[0].name} … {paths[-1].name} in {out.parent} "
            f"(seeds {args.seed} … {args.seed + len(paths) - 1})",
            file=sys.stderr,
        )
    for result in results:
        print(json.dumps(result.provenance, sort_keys=True, default=str))
    return 0
