"""`applications.optimizers`: the paper's settings, the author's preconditioner bias in Keras's form."""

import keras
import numpy as np
import pytest

import keras_langevin as kl
from applications import optimizers


@pytest.mark.parametrize(
    "name, cls, epsilon",
    [
        ("adam", keras.optimizers.Adam, 1e-6),
        ("ladam", kl.LAdam, 1e-6),
        ("layer-ladam", kl.LAdam, 1e-6),
        ("rmsprop", keras.optimizers.RMSprop, 1e-12),
        ("lrmsprop", kl.LRMSprop, 1e-12),
        ("adadelta", keras.optimizers.Adadelta, 1e-6),
        ("ladadelta", kl.LAdadelta, 1e-6),
    ],
)
def test_paper_epsilon_for_base_and_langevin_forms(name, cls, epsilon):
    optimizer = optimizers.make_optimizer(name, steps_per_epoch=10)
    assert isinstance(optimizer, cls)
    assert optimizer.epsilon == epsilon
    assert optimizers.make_optimizer(name, 10, epsilon="keras").epsilon == 1e-7
    assert optimizers.make_optimizer(name, 10, epsilon=1e-4).epsilon == 1e-4


def test_sgd_has_no_epsilon_and_bad_values_are_refused():
    assert not hasattr(optimizers.make_optimizer("lsgd", 10), "epsilon")
    with pytest.raises(ValueError, match="Received: epsilon=-1"):
        optimizers.make_optimizer("adam", 10, epsilon=-1)


def test_adadelta_and_rmsprop_keep_the_authors_decay():
    assert optimizers.make_optimizer("ladadelta", 10).rho == 0.95
    assert optimizers.make_optimizer("lrmsprop", 10).rho == 0.9


def test_rmsprop_mapping_matches_the_authors_preconditioner():
    """Author: 1 / (sqrt(v) + b); Keras: 1 / sqrt(v + eps) with eps = b^2: equal at v = 0 and
    for v >> b^2, within a factor sqrt(2) everywhere (the module docstring's claim)."""
    bias = 1e-6
    v = np.concatenate([[0.0], np.logspace(-20, 2, 500)])
    author = 1.0 / (np.sqrt(v) + bias)
    keras_form = 1.0 / np.sqrt(v + optimizers.PAPER_EPSILON["rmsprop"])
    ratio = keras_form / author
    assert ratio[0] == pytest.approx(1.0)
    assert ratio[-1] == pytest.approx(1.0, rel=1e-6)
    assert np.all(ratio >= 1.0 - 1e-12) and np.all(ratio <= np.sqrt(2) + 1e-12)


def test_adam_mapping_tends_to_the_authors_bias():
    """Author: sqrt(v/(1-b2^t)) + b; Keras: (sqrt(v) + eps) / sqrt(1-b2^t): the same when
    eps = b * sqrt(1 - b2^t), which tends to b = 1e-6 (the constant used)."""
    beta_2, bias = 0.999, 1e-6
    exact = [bias * np.sqrt(1 - beta_2**t) for t in (1, 1000, 10000)]
    assert exact[0] == pytest.approx(3.16e-8, rel=1e-2)
    assert exact[1] == pytest.approx(0.795e-6, rel=1e-2)
    assert exact[2] == pytest.approx(optimizers.PAPER_EPSILON["adam"], rel=1e-4)
