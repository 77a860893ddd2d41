"""Trainers for the two seed recipes, on accelerate (docs/training.md).

* :mod:`sarviz.training.geo` — seed 000 (HuiYanEarth-SAR): SD 1.5 + 65-channel ControlNet + UNet LoRA;
* :mod:`sarviz.training.text` — seed 001 (ONERA): text-to-SAR on SD 1.5 / SDXL;
* :mod:`sarviz.training.loop` — the shared loop; :mod:`~sarviz.training.common` — its parts;
* :mod:`sarviz.training.data` — the patch dataset and the captioned image folder;
* :mod:`sarviz.training.validation` — geo validation with the inspection metrics;
* :mod:`sarviz.training.runs` — reading runs back (the app page, model cards).
"""
