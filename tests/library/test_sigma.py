"""Setting sigma: through mixed precision's wrapper, paused across save/load, checked early."""

import keras
import numpy as np
import pytest

import keras_langevin as kl

pytestmark = pytest.mark.multibackend


def _value(tensor):
    return float(keras.ops.convert_to_numpy(tensor))


def test_sigma_set_through_the_loss_scale_optimizer_reaches_the_langevin_optimizer():
    inner = kl.LAdam(sigma=0.1)
    wrapper = keras.optimizers.LossScaleOptimizer(inner)
    wrapper.sigma = 0.0
    assert _value(inner.sigma) == 0.0 and _value(wrapper.sigma) == 0.0
    wrapper.sigma = 0.25
    assert _value(inner.sigma) == 0.25
    with pytest.raises(ValueError, match="sigma=-1"):
        wrapper.sigma = -1
    plain = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    assert not hasattr(plain, "sigma")
    with pytest.raises(AttributeError, match="not a Langevin optimizer"):
        plain.sigma = 0.1


def test_sigma_under_mixed_float16_compile():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(kl.LSGD(0.1, sigma=0.1, seed=0), "mse")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        model.optimizer.sigma = 0.0
        assert _value(kl.langevin_optimizer(model.optimizer).sigma) == 0.0
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _model():
    """One Dense layer fitted once (a built optimizer), saved without a Lambda layer (safe mode)."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(kl.LSGD(0.1, sigma=0.1, seed=0), "mse")
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    return model


def test_a_paused_optimizer_reloads_resumable(tmp_path):
    model = _model()
    model.optimizer.sigma = 0.0  # pause
    path = str(tmp_path / "paused.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert _value(loaded.optimizer.sigma) == 0.0
    assert loaded.optimizer.langevin_variables  # the noise is traced, only paused
    loaded.optimizer.sigma = 0.125  # resumes
    assert _value(loaded.optimizer.sigma) == 0.125
    clone = kl.LSGD.from_config(model.optimizer.get_config())
    clone.sigma = 0.125
    assert _value(clone.sigma) == 0.125


def test_constructed_at_zero_stays_keras_after_a_round_trip():
    optimizer = kl.LSGD(0.1)
    assert "sigma_paused" not in optimizer.get_config()
    clone = kl.LSGD.from_config(optimizer.get_config())
    with pytest.raises(ValueError, match="constructed with sigma=0"):
        clone.sigma = 0.1
    with pytest.raises(ValueError, match="sigma_paused"):
        kl.LSGD(sigma=0.1, sigma_paused=True)


def test_sigma_setter_takes_scalar_tensors_and_numpy_scalars():
    optimizer = kl.LAdam(sigma=0.1)
    optimizer.sigma = keras.ops.convert_to_tensor(0.02)
    assert _value(optimizer.sigma) == pytest.approx(0.02)
    optimizer.sigma = np.float32(0.03)
    assert _value(optimizer.sigma) == pytest.approx(0.03)
    optimizer.sigma = np.array(0.04)
    assert _value(optimizer.sigma) == pytest.approx(0.04)
    with pytest.raises(TypeError, match="sigma="):
        optimizer.sigma = keras.ops.ones((2,))
    with pytest.raises(ValueError, match="sigma="):
        optimizer.sigma = keras.ops.convert_to_tensor(-1.0)


class _Raises(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        raise RuntimeError("broken schedule")


class _NeedsTensor(keras.optimizers.schedules.LearningRateSchedule):
    """Works on the optimizer's integer step tensor, not on a Python int."""

    def __call__(self, step):
        return keras.ops.cast(step, "float32") * 0.0 + 0.1 if step.dtype else None


def test_a_schedule_that_raises_is_refused_at_construction():
    with pytest.raises(ValueError, match="at step 0 it raised RuntimeError: broken schedule"):
        kl.LAdam(sigma=_Raises())
    optimizer = kl.LAdam(sigma=_NeedsTensor())
    assert isinstance(optimizer._sigma, _NeedsTensor)


def _one_step(optimizer):
    variable = keras.Variable(np.zeros(16, "float32"))
    optimizer.build([variable])
    return optimizer, variable


def test_reseed_sets_the_noise_seed():
    reseeded, a = _one_step(kl.LSGD(1.0, sigma=1.0, seed=1))
    reseeded.reseed(2)
    fresh, b = _one_step(kl.LSGD(1.0, sigma=1.0, seed=2))
    other, c = _one_step(kl.LSGD(1.0, sigma=1.0, seed=1))
    for optimizer, variable in ((reseeded, a), (fresh, b), (other, c)):
        optimizer.apply([keras.ops.zeros(16)], [variable])
    a, b, c = (keras.ops.convert_to_numpy(v) for v in (a, b, c))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert reseeded.seed == 2 and reseeded.get_config()["seed"] == 2
    unbuilt = kl.LSGD(sigma=1.0)
    unbuilt.reseed(5)
    assert unbuilt.seed == 5
    with pytest.raises(TypeError, match="seed=None"):
        unbuilt.reseed(None)
    with pytest.raises(ValueError, match="seed=-1"):
        unbuilt.reseed(-1)


LAYER_FORMS = [kl.LayerLSGD, kl.LayerLAdam, kl.LayerLRMSprop, kl.LayerLAdadelta]


@pytest.mark.parametrize("cls", LAYER_FORMS, ids=lambda c: c.__name__)
def test_layer_forms_refuse_to_add_no_noise(cls):
    with pytest.raises(ValueError, match=r"needs `sigma` > 0.*keras\.optimizers\.\w+.*sigma=0"):
        cls()
    with pytest.raises(ValueError, match="sigma=0"):
        cls(sigma=0.0)
    assert cls(sigma=1e-3).langevin_layers == 0.3
    paused = cls(sigma=1e-3)
    paused.sigma = 0.0  # pausing is allowed, and reloads
    assert type(paused).from_config(paused.get_config()).langevin_requires_noise


def test_langevin_variables_are_empty_when_no_noise_is_ever_added():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    keras_like = kl.LAdam()  # sigma=0: exactly keras.optimizers.Adam
    keras_like.build(model.trainable_variables)
    assert keras_like.langevin_variables == []
    noisy = kl.LAdam(sigma=1e-3)
    noisy.build(model.trainable_variables)
    assert len(noisy.langevin_variables) == 2
