"""`sarviz train text` on tiny SD 1.5 and SDXL bases and a fake captioned folder, on the CPU.

The output (FORMATS C) is loaded back with diffusers and PEFT directly — the way the
text-to-SAR generator loads it — and must generate an image with the learned token.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sarviz.cli import main as cli_main  # noqa: E402
from sarviz.training import runs  # noqa: E402
from sarviz.training.text import TextTrainConfig, train_text  # noqa: E402

from _train_fixtures import one_torch_thread, write_captioned, write_patch_dataset  # noqa: F401

RES = 32
TOKEN = "<SAR>"


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_sd15_base, tiny_sdxl_base):
    root = tmp_path_factory.mktemp("text")
    data = write_patch_dataset(root / "ds", n_train=4, n_val=1, n_test=0)
    return {
        "captioned": write_captioned(data),
        # the session's read-only diffusers-dummy bases: these tests check what training writes and that it
        # loads back and generates, not how well a tiny model learns
        "sd15": tiny_sd15_base,
        "sdxl": tiny_sdxl_base,
        "root": root,
    }


def _train(env, kind, out, **kw):
    args = dict(
        data=env["captioned"],
        base=env[kind],
        out=out,
        resolution=RES,
        batch_size=2,
        grad_accum=1,
        max_steps=3,
        checkpoint_every=2,
        lr_te=1e-2,
        lr_unet=1e-3,
    )
    args.update(kw)
    return train_text(TextTrainConfig(**args))


def _initial_token_embedding(base: Path, sub: str, enc_sub: str, cls):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(base), subfolder=sub)
    enc = cls.from_pretrained(str(base), subfolder=enc_sub)
    ids = tok("radar", add_special_tokens=False).input_ids
    return enc.get_input_embeddings().weight[ids].mean(0).detach()


def _check_common(run: Path, kind: str, n_enc: int) -> dict:
    from safetensors.torch import load_file

    meta = json.loads((run / "sarviz_text_model.json").read_text())
    assert meta["format"] == "sarviz-text-sar/1" and meta["base_kind"] == kind and meta["token"] == TOKEN
    assert meta["unet"] == "full" and meta["step"] == 3 and meta["resolution"] == RES
    assert meta["recipe"]["noise_offset"] == 0.035 and meta["recipe"]["te_lora"] == {
        "r": 8,
        "alpha": 4,
        "target_modules": ["q_proj", "k_proj", "v_proj", "out_proj"],
    }
    assert (run / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    for d in ["text_encoder_lora", "text_encoder_2_lora"][:n_enc]:
        cfg = json.loads((run / d / "adapter_config.json").read_text())
        assert cfg["r"] == 8 and cfg["lora_alpha"] == 4
        lora = load_file(str(run / d / "adapter_model.safetensors"))
        assert not any("embed" in k for k in lora)  # the token lives in learned_embeds only
        assert any(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k)  # B starts at 0: it trained
    assert (run / "checkpoint-2" / "accelerate_state").is_dir() and not list(run.glob(".tmp-*"))
    return load_file(str(run / "learned_embeds.safetensors"))


def _image_ok(image) -> None:
    arr = np.asarray(image)
    assert arr.shape[:2] == (RES, RES) and np.isfinite(arr).all()


def test_sd15_text_model_trains_and_loads_back_with_diffusers(env, tmp_path):
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import PeftModel
    from transformers import CLIPTextModel

    run = tmp_path / "sd15"
    assert _train(env, "sd15", run) == run
    embeds = _check_common(run, "sd15", 1)
    assert list(embeds) == [TOKEN] and embeds[TOKEN].ndim == 1
    initial = _initial_token_embedding(env["sd15"], "tokenizer", "text_encoder", CLIPTextModel)
    assert not torch.allclose(embeds[TOKEN], initial)  # the token's embedding was learned

    pipe = StableDiffusionPipeline.from_pretrained(
        str(env["sd15"]),
        unet=UNet2DConditionModel.from_pretrained(str(run / "unet")),
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.tokenizer.model_max_length = 77
    from safetensors.torch import load_file

    pipe.load_textual_inversion(load_file(str(run / "learned_embeds.safetensors")), token=TOKEN)
    assert TOKEN in pipe.tokenizer.get_vocab()
    tid = pipe.tokenizer.convert_tokens_to_ids(TOKEN)
    torch.testing.assert_close(pipe.text_encoder.get_input_embeddings().weight[tid], embeds[TOKEN])
    pipe.text_encoder = PeftModel.from_pretrained(pipe.text_encoder, str(run / "text_encoder_lora")).merge_and_unload()
    image = pipe(
        f"{TOKEN} farmland",
        num_inference_steps=2,
        height=RES,
        width=RES,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images[0]
    _image_ok(image)
    assert runs.read_run(run).status == "finished" and [r["step"] for r in runs.loss_table(run)] == [1, 2, 3]


def test_sdxl_text_model_trains_both_encoders_and_loads_back(env, tmp_path):
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    run = tmp_path / "sdxl"
    _train(env, "sdxl", run)
    embeds = _check_common(run, "sdxl", 2)
    assert set(embeds) == {"clip_l", "clip_g"} and embeds["clip_l"].shape == (1, 32)
    for key, sub, enc_sub, cls in (
        ("clip_l", "tokenizer", "text_encoder", CLIPTextModel),
        ("clip_g", "tokenizer_2", "text_encoder_2", CLIPTextModelWithProjection),
    ):
        assert not torch.allclose(embeds[key][0], _initial_token_embedding(env["sdxl"], sub, enc_sub, cls))

    pipe = StableDiffusionXLPipeline.from_pretrained(
        str(env["sdxl"]), unet=UNet2DConditionModel.from_pretrained(str(run / "unet"))
    )
    state = load_file(str(run / "learned_embeds.safetensors"))
    pipe.load_textual_inversion(state["clip_l"], token=TOKEN, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(
        state["clip_g"], token=TOKEN, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
    )
    assert TOKEN in pipe.tokenizer.get_vocab() and TOKEN in pipe.tokenizer_2.get_vocab()
    pipe.text_encoder = PeftModel.from_pretrained(pipe.text_encoder, str(run / "text_encoder_lora")).merge_and_unload()
    pipe.text_encoder_2 = PeftModel.from_pretrained(
        pipe.text_encoder_2, str(run / "text_encoder_2_lora")
    ).merge_and_unload()
    image = pipe(
        f"{TOKEN} farmland",
        num_inference_steps=2,
        height=RES,
        width=RES,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images[0]
    _image_ok(image)


def test_unet_lora_then_vae_decoder_refinement(env, tmp_path):
    from diffusers import AutoencoderKL

    run = tmp_path / "lora"
    # bf16 mixed precision on the CPU too (frozen UNet kept float32 there, VAE float32 when refined)
    _train(env, "sd15", run, unet="lora", unet_lora_rank=4, unet_lora_alpha=4, max_steps=2, mixed_precision="bf16")
    assert (run / "unet_lora" / "adapter_model.safetensors").is_file() and not (run / "unet").exists()
    assert json.loads((run / "sarviz_text_model.json").read_text())["unet"] == "lora"
    _train(
        env,
        "sd15",
        run,
        unet="lora",
        unet_lora_rank=4,
        unet_lora_alpha=4,
        stage="vae-decoder",
        max_steps=2,
        lr_vae=1e-3,
        mixed_precision="bf16",
        kl_space="amplitude",
    )  # seed 001's A/(μ+3σ) histograms
    meta = json.loads((run / "sarviz_text_model.json").read_text())
    assert meta["vae"] == "vae" and meta["recipe"]["stage"] == "vae-decoder" and meta["recipe"]["kl_weight"] == 0.1
    assert meta["recipe"]["kl_space"] == "amplitude" and "A/(μ+3σ)" in meta["recipe"]["kl_histograms"]
    refined = AutoencoderKL.from_pretrained(str(run / "vae"))
    base = AutoencoderKL.from_pretrained(str(env["sd15"]), subfolder="vae")
    rs, bs = refined.state_dict(), base.state_dict()
    assert any(not torch.equal(rs[k], bs[k]) for k in rs if k.startswith("decoder."))
    assert all(torch.equal(rs[k], bs[k]) for k in rs if k.startswith("encoder."))  # the encoder is never tuned
    assert (run / "refine" / "checkpoint-2").is_dir() and (run / "refine" / "train_log.csv").is_file()


def test_text_bad_input_is_one_line(env, tmp_path, capsys):
    code = cli_main(
        ["train", "text", "--data", str(tmp_path), "--base", str(env["sd15"]), "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not a captioned dataset" in err
    code = cli_main(
        [
            "train",
            "text",
            "--data",
            str(env["captioned"]),
            "--base",
            str(env["sd15"]),
            "--out",
            str(tmp_path / "r"),
            "--token",
            "<OTHER>",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--token '<SAR>'" in err
    code = cli_main(
        [
            "train",
            "text",
            "--data",
            str(env["captioned"]),
            "--base",
            str(env["sd15"]),
            "--out",
            str(tmp_path / "r"),
            "--resolution",
            "30",
        ]
    )
    assert code == 2 and "multiple of 8" in capsys.readouterr().err
