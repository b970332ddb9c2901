"""The rate hinge keeps its running rate on the device, in the arithmetic of Python floats."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jointcodec.training.hyperparameters import RATE_EMA, RATE_RAMP_EPOCHS
from jointcodec.training.parts import RateHinge

rates = st.lists(st.floats(min_value=0.0, max_value=4.0, width=32), min_size=1, max_size=60)


def python_running_rate(batch_rates: list[float]) -> float:
    """The running rate as plain Python floats compute it: what a CPU run switched on before."""
    running = math.inf
    for rate in batch_rates:
        running = RATE_EMA * running + (1 - RATE_EMA) * rate if math.isfinite(running) else rate
    return running


@settings(max_examples=60, deadline=None)
@given(rates, st.floats(min_value=0.05, max_value=3.0))
def test_the_running_rate_and_the_switch_match_python_floats_exactly(batch_rates: list[float], target: float) -> None:
    hinge = RateHinge(beta=2.0, target_bpp=target)
    for rate in batch_rates:
        hinge.update(torch.tensor(rate, dtype=torch.float32))  # a batch's mean rate, as the model returns it
    expected = python_running_rate(batch_rates)
    assert hinge.running_rate() == expected
    weight = hinge.encoder_weight(RATE_RAMP_EPOCHS)  # the ramp is over: the whole beta, or nothing
    assert weight.dtype == torch.float32 and weight.ndim == 0
    assert weight.item() == (2.0 if expected > target else 0.0)


def test_beta_ramps_in_and_no_batch_seen_means_the_hinge_is_on() -> None:
    hinge = RateHinge(beta=2.0, target_bpp=0.8)
    assert hinge.encoder_weight(0.0).item() == 0.0
    assert hinge.encoder_weight(RATE_RAMP_EPOCHS / 4).item() == 0.5  # a quarter of the way: a quarter of beta
    assert hinge.encoder_weight(10 * RATE_RAMP_EPOCHS).item() == 2.0


def test_the_running_rate_survives_a_save_and_a_restore() -> None:
    hinge = RateHinge(beta=2.0, target_bpp=0.8)
    for rate in (0.9, 0.7, 0.85):
        hinge.update(torch.tensor(rate))
    restored = RateHinge(beta=2.0, target_bpp=0.8)
    restored.set_running_rate(hinge.running_rate())
    assert restored.running_rate() == hinge.running_rate()
    assert restored.encoder_weight(5.0).item() == hinge.encoder_weight(5.0).item()
