"""sigma = 0 reproduces Keras's own optimizer bit for bit, for every option combination.

The problems are random quadratics, so the gradients depend on the weights and any
difference would feed back into the trajectory."""

import numpy as np
import pytest
from helpers import BASES, SHAPES, gradient_sequence, run

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

STEPS = 50
# Keras applies accumulated gradients through a `cond` that eager JAX traces at every step
# (about 0.3 s a step): 12 steps, 4 accumulated updates, are enough for that option.
ACCUMULATION_STEPS = 12

OPTIONS = {
    kl.LSGD: [
        {},
        {"momentum": 0.9},
        {"momentum": 0.9, "nesterov": True},
    ],
    kl.LAdam: [{}, {"amsgrad": True}, {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}],
    kl.LRMSprop: [{}, {"centered": True}, {"momentum": 0.5}, {"centered": True, "momentum": 0.5}],
    kl.LAdadelta: [{}, {"rho": 0.9, "epsilon": 1e-5}],
    kl.LAdamW: [{}, {"amsgrad": True}, {"weight_decay": 0.1, "beta_1": 0.5, "epsilon": 1e-3}],
    kl.LNadam: [{}, {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}],
    kl.LSGHMC: [{"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"momentum": 0.5}],
}

COMMON = [
    {},
    {"weight_decay": 0.01},
    {"clipnorm": 0.5},
    {"clipvalue": 0.1},
    {"global_clipnorm": 1.0},
    {"use_ema": True, "ema_overwrite_frequency": 7},
    {"gradient_accumulation_steps": 3},
]

CASES = [
    pytest.param(cls, {**own, **common}, id=f"{cls.__name__}-{own}-{common}")
    for cls, owns in OPTIONS.items()
    for own in owns
    for common in (COMMON if own == owns[0] else COMMON[:1])
] + [
    pytest.param(
        cls, {**OPTIONS[cls][-1], "weight_decay": 0.01, "clipnorm": 0.5}, id=f"{cls.__name__}-mix"
    )
    for cls in OPTIONS
]


def _curvature():
    rng = np.random.default_rng(7)
    return [rng.uniform(0.1, 2.0, s).astype("float32") for s in SHAPES]


def _max_relative_difference(a, b):
    """Largest ||x - y|| / ||y|| over steps and variables."""
    return max(
        float(np.linalg.norm(x - y) / np.linalg.norm(y))
        for step_a, step_b in zip(a, b)
        for x, y in zip(step_a, step_b)
    )


@pytest.mark.parametrize("cls,options", CASES)
def test_sigma_zero_is_keras(cls, options):
    grads = gradient_sequence(
        ACCUMULATION_STEPS if "gradient_accumulation_steps" in options else STEPS
    )
    lr = 0.05 if cls is not kl.LAdadelta else 1.0
    ours, _ = run(
        cls(learning_rate=lr, sigma=0.0, seed=3, **options), grads, curvature=_curvature()
    )
    theirs, _ = run(BASES[cls](learning_rate=lr, **options), grads, curvature=_curvature())
    # The trajectory moved, so the comparison is not vacuous.
    assert _max_relative_difference(theirs[-1:], theirs[:1]) > 1e-3
    # With no noise the update is Keras's own: the required 1e-6, and in fact bit for bit.
    assert _max_relative_difference(ours, theirs) <= 1e-6
    for step_ours, step_theirs in zip(ours, theirs):
        for x, y in zip(step_ours, step_theirs):
            np.testing.assert_array_equal(x, y)
