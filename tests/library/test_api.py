"""Bad input fails at construction, naming the argument and the value; Keras's arguments and
defaults are kept; every configuration round-trips through get_config and serialize."""

import math

import keras
import numpy as np
import pytest

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

ALL = [kl.LSGD, kl.LAdam, kl.LRMSprop, kl.LAdadelta, kl.LAdamW, kl.LNadam, kl.LSGHMC]


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(
    "kwargs,error,fragment",
    [
        ({"sigma": -0.1}, ValueError, "sigma=-0.1"),
        ({"sigma": math.nan}, ValueError, "sigma=nan"),
        ({"sigma": math.inf}, ValueError, "sigma=inf"),
        ({"sigma": "0.1"}, TypeError, "sigma='0.1'"),
        ({"sigma": True}, TypeError, "sigma=True"),
        ({"langevin_layers": 0.0}, ValueError, "langevin_layers=0.0"),
        ({"langevin_layers": 1.5}, ValueError, "langevin_layers=1.5"),
        ({"langevin_layers": -0.2}, ValueError, "langevin_layers=-0.2"),
        ({"langevin_layers": []}, TypeError, "langevin_layers=[]"),
        ({"langevin_layers": [3]}, TypeError, "langevin_layers=[3]"),
        ({"seed": 1.5}, TypeError, "seed=1.5"),
        ({"seed": "1"}, TypeError, "seed='1'"),
        ({"noise": "uniform"}, ValueError, "noise='uniform'"),
    ],
)
def test_bad_input_fails_at_construction(cls, kwargs, error, fragment):
    with pytest.raises(error, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        cls(**kwargs)


def test_keras_arguments_and_defaults_are_kept():
    for ours, theirs in [
        (kl.LSGD(), keras.optimizers.SGD()),
        (kl.LAdam(), keras.optimizers.Adam()),
        (kl.LRMSprop(), keras.optimizers.RMSprop()),
        (kl.LAdadelta(), keras.optimizers.Adadelta()),
        (kl.LAdamW(), keras.optimizers.AdamW()),
        (kl.LNadam(), keras.optimizers.Nadam()),
        (kl.LSGHMC(), keras.optimizers.SGD(momentum=0.9)),
    ]:
        mine = ours.get_config()
        for key, value in theirs.get_config().items():
            if key != "name":
                assert mine[key] == value, key
        assert mine["sigma"] == 0.0 and mine["langevin_layers"] is None


def _round_trip(optimizer):
    config = optimizer.get_config()
    clone = type(optimizer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.optimizers.serialize(optimizer)
    again = keras.optimizers.deserialize(serialized)
    assert type(again) is type(optimizer) and again.get_config() == config
    return clone


def test_config_round_trips_every_argument():
    schedule = kl.schedules.LogAnnealing(5e-3, decay=1e-3)
    lr = keras.optimizers.schedules.InverseTimeDecay(5e-3, decay_steps=100, decay_rate=1.0)
    cases = [
        kl.LSGD(
            0.1,
            momentum=0.9,
            nesterov=True,
            sigma=0.2,
            seed=4,
            noise="rademacher",
            weight_decay=1e-4,
            clipnorm=1.0,
            use_ema=True,
            ema_momentum=0.9,
            gradient_accumulation_steps=2,
            jit_compile=False,
            name="custom",
        ),
        kl.LAdam(
            lr,
            beta_1=0.8,
            beta_2=0.99,
            epsilon=1e-5,
            amsgrad=True,
            sigma=schedule,
            langevin_layers=0.3,
            seed=1,
            global_clipnorm=2.0,
            loss_scale_factor=8.0,
        ),
        kl.LRMSprop(
            rho=0.8,
            momentum=0.5,
            centered=True,
            epsilon=1e-6,
            clipvalue=0.5,
            sigma=keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.1, 0.0]),
            langevin_layers=["conv*", "dense"],
        ),
        kl.LAdadelta(1.0, rho=0.9, epsilon=1e-6, sigma=0.05, ema_overwrite_frequency=5),
        kl.LayerLAdam(sigma=0.01),
        kl.LAdamW(lr, 0.01, 0.8, amsgrad=True, sigma=0.02, seed=2, clipnorm=1.0),
        kl.LNadam(1e-2, 0.8, 0.99, 1e-5, weight_decay=1e-3, sigma=schedule, noise="rademacher"),
        kl.LSGHMC(0.05, 0.7, True, 1e-4, sigma=0.3, seed=9, langevin_layers=["dense*"]),
        kl.LayerLNadam(sigma=0.01),
    ]
    for optimizer in cases:
        clone = _round_trip(optimizer)
        assert type(clone._sigma) is type(optimizer._sigma)
    assert _round_trip(cases[1])._sigma.get_config() == schedule.get_config()
    assert cases[-1].langevin_layers == 0.3


def test_layer_names_default_to_the_paper_fraction():
    layer_classes = [kl.LayerLSGD, kl.LayerLAdam, kl.LayerLRMSprop, kl.LayerLAdadelta]
    layer_classes += [kl.LayerLAdamW, kl.LayerLNadam]
    for cls in layer_classes:
        optimizer = cls(sigma=1e-3)
        assert optimizer.langevin_layers == 0.3
        assert isinstance(optimizer, ALL[layer_classes.index(cls)])
    assert kl.LayerLAdam(sigma=1e-3, langevin_layers=0.5).langevin_layers == 0.5


def test_log_annealing_follows_its_formula_and_round_trips():
    schedule = kl.schedules.LogAnnealing(0.5, decay=0.01)
    steps = np.array([0, 10, 100, 10_000])
    values = [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]
    expected = 0.5 / np.sqrt(np.log(math.e + 0.01 * steps))
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert values[0] == pytest.approx(0.5)
    again = kl.schedules.LogAnnealing.from_config(schedule.get_config())
    assert again.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="decay=-1"):
        kl.schedules.LogAnnealing(0.1, decay=-1)
    with pytest.raises(TypeError, match="initial_sigma='a'"):
        kl.schedules.LogAnnealing("a", decay=1)


def test_sigma_property_follows_the_schedule():
    optimizer = kl.LAdam(sigma=kl.schedules.LogAnnealing(0.5, decay=1.0))
    variable = keras.Variable(np.zeros(3, "float32"))
    for _ in range(3):
        optimizer.apply([keras.ops.ones(3)], [variable])
    expected = 0.5 / math.sqrt(math.log(math.e + 3))
    assert float(keras.ops.convert_to_numpy(optimizer.sigma)) == pytest.approx(expected, 1e-6)
    assert kl.LSGD(sigma=0.25).sigma == 0.25
