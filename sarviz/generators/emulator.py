"""The CPU SAR emulator as a :class:`~sarviz.generators.base.Generator`.

Per pixel: AlphaEarth embedding → σ⁰ VV/VH (dB, :mod:`sarviz.emulator.radiometric`) at the
pixel's incidence angle → linear intensity × Sentinel-1 IW GRD speckle
(:mod:`sarviz.emulator.speckle`) → dB. No GPU, no diffusion weights, well under a second.

The radiometric model is trained on 2024 *median* composites; the median of dB speckle is
below its mean, so the composite value is converted to the mean σ⁰ before speckle is
applied (+0.33 dB at ENL 4.4). A single synthetic acquisition therefore has, over a
homogeneous area, the median dB of the composite it was trained on and the mean linear
intensity of the σ⁰ it represents.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from scipy import special

from sarviz.calibration import calibration_from_card
from sarviz.emulator.radiometric import EmulatorError, RadiometricModel, file_sha256
from sarviz.emulator.speckle import SpeckleModel
from sarviz.generators.base import (
    DEFAULT_ANGLE_DEG,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    MapGenerator,
    ProgressCallback,
    WeightsMissing,
    base_provenance,
)
from sarviz.generators.run import RunContext, RunRecord, run_generation
from sarviz.registry import register_kind
from sarviz.scene import EMBEDDING_DIM, Scene


def median_to_mean_db(enl: float) -> float:
    """dB to add to a median-of-dB σ⁰ to get the mean σ⁰: −10·log10(median of gamma(L, 1/L))."""
    return -10.0 * math.log10(float(special.gammaincinv(enl, 0.5)) / enl)


class EmulatorGenerator(MapGenerator):
    kind = "emulator"
    uses_device = False  # numpy on the CPU in well under a second: it never queues behind a diffusion run

    def __init__(self, card) -> None:
        super().__init__(card)
        weights = card.resolve(card.get("weights"))
        if not weights:
            raise GenerationError(f"model card {card.path} has no 'weights' entry (a .safetensors file)")
        try:
            self.model = RadiometricModel.load(weights)
        except EmulatorError as exc:
            raise WeightsMissing(
                f"emulator weights cannot be used: {exc}; refit them with "
                "`sarviz emulator fit --points DIR --out models/emulator_radiometric.safetensors`"
            ) from None
        self.weights_path = weights
        self.weights_sha256 = file_sha256(weights)
        expected = card.get("sha256")
        if expected and expected != self.weights_sha256:
            raise WeightsMissing(
                f"{weights}: sha256 {self.weights_sha256[:12]}… does not match the model card "
                f"({str(expected)[:12]}…); the weights file was changed or replaced"
            )
        try:
            self.speckle = SpeckleModel.from_card(card.get("speckle"))
        except EmulatorError as exc:
            raise GenerationError(f"model card {card.path}: {exc}") from None
        # the card may override the physical angle law stored with the weights
        angle = card.get("angle") or {}
        try:
            self.model.reference_angle_deg = float(angle.get("reference_deg", self.model.reference_angle_deg))
            self.model.cos_power = float(angle.get("cos_power", self.model.cos_power))
            if angle.get("cos_power_vh") is not None:
                self.model.cos_power_vh = float(angle["cos_power_vh"])
        except (TypeError, ValueError, AttributeError):
            raise GenerationError(
                f"model card {card.path}: 'angle' needs numeric reference_deg and cos_power, got {angle!r}"
            ) from None
        if not (
            20.0 <= self.model.reference_angle_deg <= 50.0
            and all(0.0 <= p <= 6.0 for p in self.model.cos_powers.values())
        ):
            raise GenerationError(
                f"model card {card.path}: angle law reference_deg "
                f"{self.model.reference_angle_deg} (20–50°) or cos powers {self.model.cos_powers} "
                "(0–6) out of range"
            )

    def describe(self) -> str:
        return (
            f"{self.card.name} — a fast CPU emulator (ridge model of σ⁰ from AlphaEarth embeddings + "
            f"Sentinel-1 speckle, ENL {self.speckle.enl:g}), not a diffusion model"
        )

    # -- the pieces ----------------------------------------------------------------------
    def _angle(self, scene: Scene, request: GenerationRequest) -> tuple[np.ndarray | float, dict]:
        fallback = DEFAULT_ANGLE_DEG if request.angle_deg is None else request.angle_deg
        try:
            fallback = float(fallback)
        except (TypeError, ValueError):
            raise GenerationError(f"incidence angle must be a number of degrees, got {request.angle_deg!r}") from None
        fallback_source = "default" if request.angle_deg is None else "request"
        if scene.angle_deg is None:
            return fallback, {"angle_source": fallback_source, "angle_deg": fallback}
        angle = scene.angle_deg
        gaps = ~np.isfinite(angle)
        info: dict[str, Any] = {
            "angle_source": "scene",
            "angle_deg_range": [float(np.nanmin(angle)), float(np.nanmax(angle))],
        }
        if gaps.any():
            angle = np.where(gaps, np.float32(fallback), angle)
            info.update(
                angle_fallback_pixels=int(gaps.sum()),
                angle_fallback_deg=fallback,
                angle_fallback_source=fallback_source,
            )
        return angle, info

    def mean_sigma0_db(self, scene: Scene, request: GenerationRequest) -> tuple[np.ndarray, np.ndarray, dict]:
        """Speckle-free σ⁰ VV/VH (dB, 2024-median-like) on the scene grid, and the angle record."""
        if scene.embedding is None:
            raise GenerationError(
                f"scene {scene.scene_id or '(unnamed)'} has no AlphaEarth embedding layer; the emulator needs the "
                f"{EMBEDDING_DIM}-band embedding field (A00..A63) — fetch or import it first"
            )
        if scene.embedding.ndim != 3 or scene.embedding.shape[0] != EMBEDDING_DIM:
            raise GenerationError(
                f"the embedding layer has shape {scene.embedding.shape}; the emulator needs "
                f"{EMBEDDING_DIM} bands (A00..A63)"
            )
        angle, info = self._angle(scene, request)
        try:
            vv, vh = self.model.predict_image_db(scene.embedding, angle)
        except EmulatorError as exc:
            raise GenerationError(str(exc)) from None
        return vv, vh, info

    def generate(
        self,
        scene: Scene,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        try:
            seed = int(request.seed)
        except (TypeError, ValueError):
            raise GenerationError(f"seed must be an integer, got {request.seed!r}") from None
        if seed < 0:
            raise GenerationError(f"seed must be ≥ 0, got {seed}")

        def work(ctx: RunContext):
            ctx.step(0, "predicting σ⁰ from the embedding")
            vv, vh, angle_info = self.mean_sigma0_db(scene, request)
            ctx.step(1, "sampling Sentinel-1 speckle")
            speckle = self.speckle.sample(vv.shape, np.random.default_rng(seed))
            ctx.step(2, "applying speckle")
            return vv, vh, speckle, angle_info

        def finish(raw, record: RunRecord) -> list[GenerationResult]:
            vv, vh, speckle, angle_info = raw
            offset = median_to_mean_db(self.speckle.enl)
            # σ⁰ mean (linear) × unit-mean speckle, back to dB; NaN pixels stay NaN through every step
            out_vv = (10.0 * np.log10(speckle[0]) + (vv + offset)).astype(np.float32)
            out_vh = (10.0 * np.log10(speckle[1]) + (vh + offset)).astype(np.float32)
            provenance = base_provenance(
                self.model_id,
                scene,
                request,
                generator="emulator",
                model_kind=self.kind,
                weights=str(self.card.get("weights")),
                weights_sha256=self.weights_sha256,
                feature_map=self.model.feature_map,
                enl=self.speckle.enl,
                speckle={
                    "enl": self.speckle.enl,
                    "lag1_corr_x": self.speckle.lag1_corr_x,
                    "lag1_corr_y": self.speckle.lag1_corr_y,
                    "pol_corr": self.speckle.pol_corr,
                },
                median_to_mean_db=round(offset, 4),
                reference_angle_deg=self.model.reference_angle_deg,
                cos_power=self.model.cos_power,
                cos_power_vh=self.model.cos_powers["VH"],
                calibration=calibration_from_card(self.card.data).to_dict(),
                nan_pixels=int(np.isnan(out_vv).sum()),
                **angle_info,
                seconds=round(record.seconds, 3),
            )
            return [GenerationResult(out_vv, out_vh, scene.crs, scene.transform, provenance)]

        return run_generation(self, request, total=3, work=work, finish=finish, progress=progress, cancel=cancel)[0]


register_kind("emulator", EmulatorGenerator)
