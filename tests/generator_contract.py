"""The generator contract: the same checks over every generator (like diffusers' ``PipelineTesterMixin``).

A generator joins by subclassing :class:`GeneratorContract` in a ``test_*.py`` module with a
class-scoped ``generator`` fixture (a built, ready generator on tiny weights) and, for map
generators, ``scene`` / for image transformers, ``source`` (a georeferenced
:class:`GenerationResult`)::

    class TestMyTransformerContract(GeneratorContract):
        @pytest.fixture(scope="class")
        def generator(self, tmp_path_factory):
            return MyTransformer(my_tiny_card(tmp_path_factory.mktemp("tiny")))

        @pytest.fixture(scope="class")
        def source(self):
            return GenerationResult(vv, vh, crs, transform, {...})

        def make_request(self, seed):          # optional: the request the checks use
            return TransformRequest(seed=seed, steps=2, dtype="float32", device="cpu")

The checks: the generator is one of the three kinds and ready; the same seed gives the same
image and another seed another image; progress reports count up to their total and end with
it; cancelling stops the run between steps and frees the device queue; every result carries
the required provenance; the written GeoTIFF is complete, round-trips, and is georeferenced
exactly when the result is. Each generator is run three times (seed 3 twice, seed 4) plus one
cancelled run, on the tiny models the other tests build, so the contract costs little time.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch

from sarviz.generators import runtime
from sarviz.generators.base import (
    GenerationCancelled,
    GenerationRequest,
    GenerationResult,
    Generator,
    ImageTransformer,
    MapGenerator,
    PromptGenerator,
    TransformRequest,
)
from sarviz.generators.run import REQUIRED_PROVENANCE


class GeneratorContract:
    """Mixin: subclass as ``Test…Contract`` and supply the fixtures named in the module docstring."""

    #: the interface the generator is expected to implement ("map", "prompt", "transform")
    interface: str = ""

    # -- what subclasses supply ---------------------------------------------------------------
    @pytest.fixture(scope="class")
    def generator(self) -> Generator:  # pragma: no cover - always overridden
        raise NotImplementedError("a contract subclass supplies the generator fixture")

    @pytest.fixture(scope="class")
    def scene(self):
        return None

    @pytest.fixture(scope="class")
    def source(self):
        return None

    def make_request(self, seed: int):
        """The request every check uses (tiny, float32 on the CPU so the results are exact)."""
        if self.interface == "transform":
            return TransformRequest(seed=seed, device="cpu", dtype="float32")
        return GenerationRequest(
            seed=seed, device="cpu", dtype="float32", prompt="a port with ships" if self.interface == "prompt" else None
        )

    # -- one way to call every kind -------------------------------------------------------------
    def call(
        self, generator: Generator, scene, source, seed: int, progress=None, cancel=None
    ) -> list[GenerationResult]:
        request = self.make_request(seed)
        if isinstance(generator, MapGenerator):
            return [generator.generate(scene, request, progress, cancel)]
        if isinstance(generator, PromptGenerator):
            return generator.generate(request, progress, cancel)
        if isinstance(generator, ImageTransformer):
            return [generator.transform(source, request, progress, cancel)]
        raise AssertionError(f"{type(generator).__name__} is none of the three generator kinds")

    @pytest.fixture(scope="class", autouse=True)
    def _one_torch_thread(self):
        # tiny models on a shared machine: one thread is much faster than two
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)

    @pytest.fixture(scope="class")
    def runs(self, generator, scene, source):
        """Seed 3 twice (the first with a progress log) and seed 4, run once for all checks."""
        log: list[tuple[int, int, str]] = []
        first = self.call(generator, scene, source, 3, progress=lambda i, n, m: log.append((i, n, m)))
        again = self.call(generator, scene, source, 3)
        other = self.call(generator, scene, source, 4)
        return {"first": first, "again": again, "other": other, "progress": log}

    # -- the checks -----------------------------------------------------------------------------
    def test_is_one_of_the_three_kinds_and_ready(self, generator):
        kinds = {"map": MapGenerator, "prompt": PromptGenerator, "transform": ImageTransformer}
        assert isinstance(generator, kinds[self.interface]) and generator.interface == self.interface
        state = generator.readiness()
        assert state.ready and state.problem is None, state
        assert generator.model_id and generator.describe()

    def test_same_seed_same_image_other_seed_other_image(self, runs):
        assert len(runs["first"]) == len(runs["again"]) >= 1
        for a, b in zip(runs["first"], runs["again"]):
            np.testing.assert_array_equal(a.vv_db, b.vv_db)
            if a.vh_db is not None:
                np.testing.assert_array_equal(a.vh_db, b.vh_db)
        a, c = runs["first"][0].vv_db, runs["other"][0].vv_db
        both = np.isfinite(a) & np.isfinite(c)
        assert both.any() and np.abs(a[both] - c[both]).max() > 1e-3

    def test_progress_counts_up_to_its_total(self, runs):
        log = runs["progress"]
        assert log, "no progress reported"
        totals = {n for _, n, _ in log}
        assert len(totals) == 1 and next(iter(totals)) >= 1, totals
        total = log[-1][1]
        steps = [i for i, _, _ in log]
        assert steps == sorted(steps) and 0 <= steps[0] and steps[-1] == total
        assert len({i for i in steps if i > 0}) >= min(total, 2)  # unit-by-unit, not only at the end
        assert all(isinstance(m, str) and m for _, _, m in log)

    def test_cancel_stops_between_steps_and_frees_the_queue(self, generator, scene, source, runs):
        cancel = threading.Event()
        seen: list[int] = []

        def progress(i, n, m):
            seen.append(i)
            if i >= 1:
                cancel.set()  # after the first unit of work

        with pytest.raises(GenerationCancelled):
            self.call(generator, scene, source, 3, progress=progress, cancel=cancel)
        total = runs["progress"][-1][1]
        assert max(seen) < total  # stopped before the end
        assert runtime.QUEUE.busy("cpu") == 0
        started = threading.Event()
        started.set()
        with pytest.raises(GenerationCancelled):  # cancelled before it starts: nothing runs
            self.call(generator, scene, source, 3, cancel=started)

    def test_provenance_has_the_required_fields(self, generator, runs):
        for k, result in enumerate(runs["first"]):
            prov = result.provenance
            missing = [key for key in REQUIRED_PROVENANCE if key not in prov]
            assert not missing, missing
            assert prov["model_id"] == generator.model_id and prov["interface"] == self.interface
            assert prov["seed"] == 3 + k and prov["dtype"] == "float32" and prov["device"] == "cpu"
            assert isinstance(prov["dtype_choice"], str) and isinstance(prov["speed_options"], dict)
            assert prov["seconds"] >= 0 and prov["timestamp"]
            assert "calibration" in prov  # the dB the image means

    def test_written_geotiff_is_complete_and_round_trips(self, runs, scene, source, tmp_path):
        import rasterio
        from PIL import Image

        from sarviz.scene import verify_written_tiff

        result = runs["first"][0]
        path = result.to_geotiff(tmp_path / "out.tif")
        verify_written_tiff(path, path)  # complete (raises OSError when short)
        back = GenerationResult.from_geotiff(path)
        np.testing.assert_array_equal(back.vv_db, result.vv_db)
        assert (back.vh_db is None) == (result.vh_db is None)
        assert back.provenance["model_id"] == result.provenance["model_id"]
        grid = scene if scene is not None else source
        if self.interface == "prompt":
            assert not result.georeferenced and back.crs is None and back.transform is None
        else:
            assert result.georeferenced and result.vv_db.shape == (grid.height, grid.width)
            with rasterio.open(path) as src:
                assert src.crs == grid.crs and src.transform == grid.transform
        png = Image.open(io.BytesIO(result.png_bytes()))
        assert png.size == (result.width, result.height)
