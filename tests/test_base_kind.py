"""One base_kind: which Stable Diffusion family a diffusers base folder is."""

from __future__ import annotations

import json

import pytest

from sarviz.errors import GenerationError, WeightsMissing
from sarviz.generators.base_model import base_kind
from sarviz.training.common import TrainError

SD15 = {
    "_class_name": "StableDiffusionPipeline",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SDXL = {
    **SD15,
    "_class_name": "StableDiffusionXLPipeline",
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
}
SD3 = {
    "_class_name": "StableDiffusion3Pipeline",
    "transformer": ["diffusers", "SD3Transformer2DModel"],
    "text_encoder_3": ["transformers", "T5EncoderModel"],
}


def _base(tmp_path, index, name="base"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize(
    "index, kind",
    [
        (SD15, "sd15"),
        ({**SD15, "_class_name": "StableDiffusionImg2ImgPipeline"}, "sd15"),
        (SDXL, "sdxl"),
        ({**SDXL, "_class_name": "StableDiffusionXLImg2ImgPipeline"}, "sdxl"),
        ({**SDXL, "_class_name": "DiffusionPipeline"}, "sdxl"),  # SDXL by its components (second text encoder)
        ({**SD15, "_class_name": "StableDiffusionPipeline", "text_encoder_2": ["transformers", "X"]}, "sdxl"),
        (SD3, "sd3"),
        ({**SD3, "_class_name": "StableDiffusion3Img2ImgPipeline"}, "sd3"),
        ({"_class_name": "KandinskyV22Pipeline", "unet": ["diffusers", "UNet2DConditionModel"]}, None),
        ({"_class_name": "PixArtAlphaPipeline", "transformer": ["diffusers", "PixArtTransformer2DModel"]}, None),
    ],
)
def test_base_kind_from_model_index(tmp_path, index, kind):
    base = _base(tmp_path, index)
    if kind is None:
        with pytest.raises(GenerationError, match="is not Stable Diffusion"):
            base_kind(base, supported=("sd15", "sdxl", "sd3"))
    else:
        assert base_kind(base, supported=("sd15", "sdxl", "sd3")) == kind


def test_callers_share_it_and_refuse_in_their_own_terms(tmp_path):
    from sarviz.generators import text as text_generator
    from sarviz.training import text as text_training

    assert text_generator.base_kind is base_kind  # the generator uses the one function
    sd3, sdxl = _base(tmp_path, SD3, "sd3"), _base(tmp_path, SDXL, "sdxl")
    assert text_training.base_kind(sdxl) == "sdxl" == base_kind(sdxl)
    with pytest.raises(GenerationError, match="is sd3; this needs sd15 or sdxl"):
        base_kind(sd3)  # the SD 1.5/SDXL tools no longer take an SD3 pipeline for SD 1.5
    with pytest.raises(TrainError, match="is sd3.*fine-tunes Stable Diffusion 1.5 or SDXL"):
        text_training.base_kind(sd3)
    with pytest.raises(WeightsMissing, match="model_index.json is missing"):
        base_kind(tmp_path / "nowhere")
    with pytest.raises(TrainError, match="model_index.json is missing"):
        text_training.base_kind(tmp_path / "nowhere")
