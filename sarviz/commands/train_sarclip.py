"""`sarviz train-sarclip`: fine-tune a CLIP model on SAR–caption pairs (the SAR-CLIP of seed 001's evaluation).

(To be folded under `sarviz train sarclip` beside `sarviz train geo|text`.)
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-sarclip", help="fine-tune a CLIP model on a captioned SAR dataset (SAR-CLIP, for evaluate-text)",
        description="Contrastive fine-tuning of a transformers CLIPModel on the train split of a captioned dataset "
                    "(`sarviz dataset caption`); the validation loss is reported each epoch. The output folder "
                    "(model, processor, sarclip_info.json) is what `sarviz evaluate-text --sarclip` loads.")
    p.add_argument("--data", required=True, metavar="CAPTIONED", help="captioned dataset folder")
    p.add_argument("--base", required=True, metavar="CLIP_DIR",
                   help="local CLIP model folder with its processor (e.g. a copy of openai/clip-vit-base-patch32)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-items", type=int, default=None, help="use only the first N train pairs")
    p.add_argument("--device", default="cpu", help="cpu or cuda (multi-GPU: run under `accelerate launch`)")
    p.set_defaults(func=run_train_sarclip)


def run_train_sarclip(args: argparse.Namespace) -> int:
    from sarviz.commands.generate_text import cli_progress
    from sarviz.training.sarclip import SarClipRecipe, train_sarclip

    recipe = SarClipRecipe(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           seed=args.seed, max_items=args.max_items)
    result = train_sarclip(args.data, args.base, args.out, recipe, device=args.device,
                           progress=cli_progress("train-sarclip"))
    print(json.dumps({"out": str(result.out), "train_losses": result.train_losses, "val_losses": result.val_losses}))
    return 0
