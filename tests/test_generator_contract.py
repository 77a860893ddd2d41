"""Every generator through the same contract (tests/generator_contract.py).

The emulator (the repository's own card and weights), the tiny ControlNet geo model and the
tiny SD 1.5 and SDXL text-to-SAR models (the random models the other tests build), the
seed-003 SD3 text-to-SAR generator (a tiny SD3 base with a random MM-DiT LoRA) and
attention-distillation migrator (the tiny SD 1.5 base), the seed-002 SAR→SAR renderer on a
tiny ControlNet, and a test-only image transformer that exercises the ``uses_device = False``
transform branch.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from sarviz.emulator.speckle import SpeckleModel
from sarviz.generators.base import (
    GenerationError,
    GenerationResult,
    ImageTransformer,
    ProgressCallback,
    TransformRequest,
)
from sarviz.generators.run import RunContext, RunRecord, check_seed, run_generation
from sarviz.registry import REPO_MODELS_DIR, ModelCard, ModelRegistry

from _diffusion_fixtures import tiny_scene, write_card
from _text_fixtures import tiny_text_model, write_text_card
from generator_contract import GeneratorContract


class TestEmulatorContract(GeneratorContract):
    interface = "map"

    @pytest.fixture(scope="class")
    def generator(self):
        return ModelRegistry([REPO_MODELS_DIR]).generator("emulator")

    @pytest.fixture(scope="class")
    def scene(self):
        return tiny_scene()


class TestControlNetContract(GeneratorContract):
    interface = "map"

    @pytest.fixture(scope="class")
    def generator(self, tiny_ckpt, tmp_path_factory):
        folder = tmp_path_factory.mktemp("contract_cards")
        write_card(folder, tiny_ckpt)
        return ModelRegistry([folder]).generator("tiny-sar")

    @pytest.fixture(scope="class")
    def scene(self):
        return tiny_scene()


class _TextContract(GeneratorContract):
    interface = "prompt"
    base_kind = "sd15"

    @pytest.fixture(scope="class")
    def generator(self, tmp_path_factory):
        model = tiny_text_model(tmp_path_factory.mktemp(f"contract_{self.base_kind}"), kind=self.base_kind)
        folder = tmp_path_factory.mktemp(f"contract_text_cards_{self.base_kind}")
        write_text_card(folder, model.run)
        return ModelRegistry([folder]).generator("tiny-text")


class TestSD15TextContract(_TextContract):
    base_kind = "sd15"


class TestSDXLTextContract(_TextContract):
    base_kind = "sdxl"


# -- a test-only image transformer ------------------------------------------------------------------
class SpeckleResampler(ImageTransformer):
    """Test-only: a new speckle draw over a georeferenced dB image (linear × unit-mean gamma speckle).

    Not a product feature — it is here so the contract's transform branch and the run
    sequence's ``uses_device = False`` path are checked before the real transformers land.
    """

    kind = "speckle-resampler (test)"
    uses_device = False

    def transform(
        self,
        source: GenerationResult,
        request: TransformRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        if not source.georeferenced or source.vh_db is None:
            raise GenerationError("the speckle resampler needs a georeferenced VV/VH image")
        seed = check_seed(request.seed)
        speckle = SpeckleModel.from_card({"enl": float(request.options.get("enl", 4.4))})

        def work(ctx: RunContext):
            ctx.step(0, "drawing speckle")
            field = speckle.sample(source.vv_db.shape, np.random.default_rng(seed))
            ctx.step(1, "applying speckle")
            return field

        def finish(field, record: RunRecord) -> list[GenerationResult]:
            vv = (source.vv_db + 10 * np.log10(field[0])).astype(np.float32)
            vh = (source.vh_db + 10 * np.log10(field[1])).astype(np.float32)
            prov = {
                "calibration": source.provenance.get("calibration"),
                "enl": speckle.enl,
                "source_model": source.provenance.get("model_id"),
            }
            return [
                GenerationResult(vv, vh, source.crs, source.transform, {k: v for k, v in prov.items() if v is not None})
            ]

        return run_generation(self, request, total=2, work=work, finish=finish, progress=progress, cancel=cancel)[0]


class TestImageTransformerContract(GeneratorContract):
    interface = "transform"

    @pytest.fixture(scope="class")
    def generator(self):
        card = ModelCard(
            id="speckle-resampler", name="test-only speckle resampler", kind="test", path=Path("/nonexistent/card.json")
        )
        return SpeckleResampler(card)

    @pytest.fixture(scope="class")
    def source(self):
        emulator = ModelRegistry([REPO_MODELS_DIR]).generator("emulator")
        from sarviz.generators.base import GenerationRequest

        return emulator.generate(tiny_scene(), GenerationRequest(seed=0))

    def make_request(self, seed: int) -> TransformRequest:
        return TransformRequest(seed=seed, device="cpu", dtype="float32", options={"enl": 4.4})


# -- seed 003: the SD3 text generator and the attention-distillation migrator -----------------------
class TestSD3TextContract(GeneratorContract):
    interface = "prompt"

    @pytest.fixture(scope="class")
    def generator(self, tmp_path_factory, tiny_sd3_base):
        import json

        from tiny_models import write_sd3_run

        root = tmp_path_factory.mktemp("contract_sd3")
        run = write_sd3_run(root / "run", tiny_sd3_base)
        cards = root / "cards"
        cards.mkdir()
        (cards / "tiny-sd3.json").write_text(
            json.dumps(
                {
                    "id": "tiny-sd3",
                    "name": "Tiny random SD3 text-to-SAR",
                    "kind": "text-to-sar-sd3",
                    "weights": {"run": str(run)},
                    "sampler": {"steps": 2, "guidance": 3.0, "shift": 2.0},
                }
            )
        )
        return ModelRegistry([cards]).generator("tiny-sd3")

    def test_samples_with_flow_matching_and_its_shift(self, runs):
        prov = runs["first"][0].provenance
        assert prov["scheduler"] == "flow-match-euler" and prov["shift"] == 2.0 and prov["base_kind"] == "sd3"
        assert prov["prompt"].startswith("SAR image, a port with ships, C-band")


class TestMigrationContract(GeneratorContract):
    interface = "transform"

    @pytest.fixture(scope="class")
    def generator(self, tmp_path_factory, tiny_sd15_base):
        from _migration_fixtures import speckle_amplitude, write_png
        from sarviz.migration.migrate import KIND

        root = tmp_path_factory.mktemp("contract_migration")
        base = tiny_sd15_base
        ref = write_png(root / "ref.png", speckle_amplitude(64, 1, 7))
        card = ModelCard(
            id="tiny-ad-migration",
            name="Tiny AD migration",
            kind=KIND,
            path=root / "card.json",
            data={
                "weights": {"base": str(base)},
                "style_references": [str(ref)],
                "settings": {"steps": 3, "decode_crop": 4},
            },
        )
        from sarviz.registry import build_generator

        return build_generator(card)

    @pytest.fixture(scope="class")
    def source(self):
        from affine import Affine

        from _migration_fixtures import speckle_amplitude
        from sarviz.calibration import DEFAULT_CALIBRATION

        vv = 20 * np.log10(speckle_amplitude(64, 8, 41)) - 10
        vh = 20 * np.log10(speckle_amplitude(64, 8, 42)) - 17
        return GenerationResult(
            vv,
            vh,
            "EPSG:32630",
            Affine(10, 0, 500000, 0, -10, 4200000),
            {"model_id": "emulator", "calibration": DEFAULT_CALIBRATION.to_dict()},
        )

    def make_request(self, seed: int) -> TransformRequest:
        return TransformRequest(seed=seed, device="cpu", dtype="float32", options={"polarisations": ["VV"]})


# -- the SAR→SAR renderer (seed 002) ------------------------------------------------------------------
class TestSar2SarRendererContract(GeneratorContract):
    """The renderer on the tiny random SD 1.5 base with a ControlNet made from its UNet (untrained: the
    contract checks the interface, not the rendering). Factor 1 keeps the source's grid, which the
    contract's GeoTIFF check expects; the finer grids are tested in tests/test_sar2sar_render.py."""

    interface = "transform"

    @pytest.fixture(scope="class")
    def generator(self, tmp_path_factory, tiny_sd15_base):
        import torch
        from diffusers import ControlNetModel, UNet2DConditionModel

        from sarviz.formats.sar2sar import Sar2SarRun
        from sarviz.generators.sar2sar import Sar2SarRenderer

        root = tmp_path_factory.mktemp("contract_sar2sar")
        base = tiny_sd15_base
        torch.manual_seed(0)
        cn = ControlNetModel.from_unet(
            UNet2DConditionModel.from_pretrained(str(base / "unet")),
            conditioning_embedding_out_channels=(16, 32, 96, 256),
        )
        Sar2SarRun(
            root / "run",
            {
                "step": 0,
                "base": str(base),
                "base_kind": "sd15",
                "resolution": 64,
                "pairs": {},
                "consistency_calibration": None,
            },
        ).save(controlnet=cn)
        # built the way every generator is: a model card of kind "sar2sar" (run relative to the card)
        ModelCard(
            id="tiny-sar2sar", name="tiny SAR→SAR", kind="sar2sar", path=root / "tiny-sar2sar.json", data={"run": "run"}
        ).save()
        renderer = ModelRegistry([root]).generator("tiny-sar2sar")
        assert isinstance(renderer, Sar2SarRenderer) and renderer.run.folder == root / "run"
        return renderer

    @pytest.fixture(scope="class")
    def source(self):
        from sarviz.generators.base import GenerationRequest

        emulator = ModelRegistry([REPO_MODELS_DIR]).generator("emulator")
        return emulator.generate(tiny_scene(), GenerationRequest(seed=0))

    def make_request(self, seed: int) -> TransformRequest:
        return TransformRequest(
            seed=seed, steps=2, strength=1.0, device="cpu", dtype="float32", options={"factor": 1.0, "tile": 64}
        )
