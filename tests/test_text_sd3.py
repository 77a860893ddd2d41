"""Seed 003 stage 1: `sarviz train text` on a tiny SD3 base (MM-DiT LoRA, rectified flow) → generate-text."""

from __future__ import annotations

import json

import pytest
import torch

from _sd3_fixtures import SIZE
from sarviz.cli import main
from sarviz.training.text import TextTrainConfig

from _text_fixtures import one_torch_thread, write_captioned  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread, tiny_sd3_base):  # noqa: F811
    from sarviz.training.text_sd3 import SD3TextTrainer

    root = tmp_path_factory.mktemp("sd3")
    base = tiny_sd3_base  # read only
    data = write_captioned(root / "captioned", n_per_label=1, size=SIZE, splits=("train",))
    config = TextTrainConfig(
        data=data,
        base=base,
        out=root / "run",
        resolution=SIZE,
        batch_size=1,
        grad_accum=1,
        max_steps=1,
        checkpoint_every=1,
        lr_lora=1e-2,
        mixed_precision="no",
        gradient_checkpointing=False,
        lora_rank=4,
        lora_alpha=4,
    )
    trainer = SD3TextTrainer(config)
    trainer.setup()
    model = trainer.accelerator.unwrap_model(trainer.transformer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    after = dict(model.named_parameters())
    return {
        "root": root,
        "base": base,
        "run": root / "run",
        "before": before,
        "after": after,
        "model": model,
        "trainer": trainer,
    }


def test_one_lora_step_changes_only_lora_parameters(trained):
    changed = [n for n, p in trained["after"].items() if not torch.equal(p.detach(), trained["before"][n])]
    assert changed and all("lora_" in n for n in changed)
    assert any(".attn.to_q.lora_B" in n for n in changed)
    lora_names = [n for n in trained["after"] if "lora_" in n]
    assert not any("add_q_proj" in n or "to_out" in n for n in lora_names)  # the paper's Q, K, V only
    meta = json.loads((trained["run"] / "sarviz_text_model.json").read_text())
    assert meta["base_kind"] == "sd3" and meta["recipe"]["lora"]["targets"] == "qkv"
    assert meta["recipe"]["timestep_density"] == {"logit_normal": {"mean": 0.0, "std": 1.0}}
    assert (trained["run"] / "checkpoint-1" / "accelerate_state").is_dir()


def test_save_then_load_gives_identical_outputs(trained):
    from sarviz.generators.text import run_card
    from sarviz.generators.text_sd3 import SD3TextGenerator

    loaded = SD3TextGenerator(run_card(trained["run"])).load("cpu", "float32").pipe.transformer
    torch.manual_seed(0)
    x = torch.randn(1, 4, SIZE // 8, SIZE // 8)
    ctx, pooled = torch.randn(1, 7, 32), torch.randn(1, 64)
    t = torch.tensor([500.0])
    with torch.no_grad():
        a = trained["model"](hidden_states=x, timestep=t, encoder_hidden_states=ctx, pooled_projections=pooled).sample
        b = loaded(hidden_states=x, timestep=t, encoder_hidden_states=ctx, pooled_projections=pooled).sample
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_generate_text_from_the_run(trained, capsys):
    out = trained["root"] / "gen.tif"
    assert (
        main(
            [
                "generate-text",
                "--weights",
                str(trained["run"]),
                "--prompt",
                "trees",
                "--steps",
                "2",
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    prov = json.loads(capsys.readouterr().out)
    assert prov["base_kind"] == "sd3" and prov["prompt"].startswith("SAR image, trees, C-band")
    # flow matching with the base scheduler's own shift (none asked for), recorded as a value
    assert prov["scheduler"] == "flow-match-euler" and prov["shift"] == 3.0 and prov["interface"] == "prompt"
    assert prov["prompt_as_typed"] == "trees"
    from sarviz.generators.text import TextResult

    assert TextResult.from_geotiff(out).vv_db.shape == (SIZE, SIZE)


def test_resume_continues_from_the_checkpoint(trained):
    from sarviz.training.text import train_text

    c = trained["trainer"].config
    config = TextTrainConfig(
        **{**{k: getattr(c, k) for k in TextTrainConfig.__dataclass_fields__}, "max_steps": 2, "resume_from": "latest"}
    )
    train_text(config)
    meta = json.loads((trained["run"] / "sarviz_text_model.json").read_text())
    assert meta["step"] == 2 and (trained["run"] / "checkpoint-2").is_dir()


def test_train_text_cli_on_an_sd3_base_with_the_diffusers_target_set(trained, capsys):
    from safetensors import safe_open

    run = trained["root"] / "run-cli"
    data = trained["root"] / "captioned"
    assert (
        main(
            [
                "train",
                "text",
                "--data",
                str(data),
                "--base",
                str(trained["base"]),
                "--out",
                str(run),
                "--resolution",
                str(SIZE),
                "--batch-size",
                "1",
                "--grad-accum",
                "1",
                "--max-steps",
                "1",
                "--mixed-precision",
                "no",
                "--no-gradient-checkpointing",
                "--lora-rank",
                "2",
                "--lora-targets",
                "diffusers",
            ]
        )
        == 0
    )
    meta = json.loads((run / "sarviz_text_model.json").read_text())
    assert meta["recipe"]["lora"]["r"] == 2 and meta["recipe"]["lora"]["targets"] == "diffusers"
    with safe_open(str(run / "transformer_lora" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("add_q_proj" in k for k in keys) and any("to_add_out" in k for k in keys)
    assert (
        main(
            [
                "train",
                "text",
                "--data",
                str(data),
                "--base",
                str(trained["base"]),
                "--out",
                str(run / "x"),
                "--stage",
                "vae-decoder",
            ]
        )
        == 2
    )
    assert "one stage" in capsys.readouterr().err
