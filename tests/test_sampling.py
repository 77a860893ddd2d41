"""Typed sampler settings: every named scheduler builds, shift reaches flow matching, bad settings are refused."""

from __future__ import annotations

import pytest

from sarviz.generators.base import GenerationError, GenerationRequest, TransformRequest
from sarviz.generators.sampling import (
    DDPM,
    FLOW_MATCHING,
    SCHEDULERS,
    SamplerSettings,
    check_sampler,
)

SD15_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}
SD3_SCHEDULE = {"num_train_timesteps": 1000, "shift": 3.0}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_named_scheduler_builds_and_sets_timesteps(name):
    spec = SCHEDULERS[name]
    settings = SamplerSettings(scheduler=name, steps=4, guidance=5.0)
    scheduler = settings.make_scheduler(SD3_SCHEDULE if spec.family == FLOW_MATCHING else SD15_SCHEDULE)
    assert type(scheduler).__name__ == spec.class_name
    for key, value in spec.extra.items():
        assert scheduler.config[key] == value
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) >= 4


def test_flow_matching_shift_from_card_and_request():
    card = SamplerSettings.from_card({"scheduler": "flow-match-euler", "shift": 3.0}, {"steps": 28, "guidance": 7.0})
    assert card.family == FLOW_MATCHING and card.make_scheduler(SD3_SCHEDULE).config.shift == 3.0
    asked = card.with_request(TransformRequest(steps=10, shift=6.0))
    assert (asked.steps, asked.shift, asked.guidance) == (10, 6.0, 7.0)
    shifted, plain = asked.make_scheduler(SD3_SCHEDULE), card.make_scheduler(SD3_SCHEDULE)
    shifted.set_timesteps(10)
    plain.set_timesteps(10)
    assert shifted.sigmas[5] > plain.sigmas[5]  # a larger shift spends more steps at high noise
    assert asked.provenance() == {"scheduler": "flow-match-euler", "steps": 10, "guidance": 7.0, "shift": 6.0}


def test_request_overrides_and_refusals():
    card = SamplerSettings.from_card(None, {"scheduler": "dpmsolver++-2m-karras", "steps": 30, "guidance": 7.0})
    assert card.family == DDPM
    assert card.with_request(GenerationRequest(scheduler="euler", guidance=3)).scheduler == "euler"
    with pytest.raises(GenerationError, match="flow-matching scheduler but this model is sampled with ddpm"):
        card.with_request(GenerationRequest(scheduler="flow-match-euler"))
    with pytest.raises(GenerationError, match="shift applies to flow-matching schedulers only"):
        card.with_request(GenerationRequest(shift=3.0))
    with pytest.raises(GenerationError, match="steps must be between 1 and 1000"):
        card.with_request(GenerationRequest(steps=0))
    with pytest.raises(GenerationError, match="guidance must be between 0 and 30"):
        check_sampler({"scheduler": "ddim", "steps": 5, "guidance": float("nan")})
    with pytest.raises(GenerationError, match="unknown scheduler 'lms'"):
        check_sampler(SamplerSettings("lms", 5, 1.0))
    with pytest.raises(GenerationError, match="model card x: the sampler needs"):
        SamplerSettings.from_card({"steps": "many"}, {"scheduler": "ddim", "guidance": 1.0}, "model card x")
