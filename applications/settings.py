"""The one place that decides an optimizer's settings: every default is filled in here, once.

An optimizer name (`applications.optimizers.OPTIMIZERS`) and the settings a user gave (None or
absent: not given) resolve to an `OptimizerSettings`, a frozen record of the values the run
actually uses. The scripts, the run engine and the records all go through it, so a record never
shows None for "the default":

    from applications import settings

    chosen = settings.resolve("layer-ladam", epochs=10, sigma=0.01)
    chosen.lr, chosen.epsilon, chosen.decay_epochs     # 0.005, 1e-06, 20.0 (the paper's)
    optimizer = chosen.build(steps_per_epoch=50, seed=0)
    chosen.as_dict()                                   # the JSON form kept in records

Defaults (the paper's, from the author's experiment script; per base optimizer in
`applications.optimizers`):

* `lr`: `PAPER_LR[base]` (5e-3; Adadelta 0.1); `sigma`: `PAPER_SIGMA[base]` (5e-3; Adadelta
  5e-2);
* `lr_schedule` "inverse-time", `sigma_schedule` "log", `decay_epochs` 20 (T of both);
  a "cosine" schedule spans the run instead: its `decay_epochs` defaults to `epochs`;
* `epsilon` "paper": the author's preconditioner bias in Keras's form (`PAPER_EPSILON[base]`;
  Keras's default for a base the paper does not have); "keras": the Keras class's default;
  a number: that number. The resolved value is always a number;
* `noise` "gaussian"; `langevin_layers` 0.3 (a fraction, names, or "all");
  `exploration_fraction` 0.8 (sigma_schedule "cyclical").

A setting that the optimizer does not use is None in the result (`sigma`, `sigma_schedule`,
`noise` of a plain Keras optimizer; `langevin_layers` except for `layer-l<base>`; `epsilon` of
SGD; `exploration_fraction` except with the cyclical sigma): `resolve` drops it, and
`unused(names, **given)` names the given settings that none of `names` uses (the scripts refuse
those). Bad values raise `SettingsError`, naming the setting and the value, before anything is
built: an unknown schedule, a non-positive learning rate, or a schedule that never turns the
noise on within `epochs`.
"""

import dataclasses
import inspect
import math
from numbers import Real

import keras

import keras_langevin as kl
from applications import optimizers as registry

#: T of the paper's schedules, in epochs.
PAPER_DECAY_EPOCHS = 20
#: The defaults that do not depend on the base optimizer.
DEFAULTS = {
    "lr_schedule": "inverse-time",
    "sigma_schedule": "log",
    "noise": "gaussian",
    "epsilon": "paper",
    "langevin_layers": registry.PAPER_LAYER_FRACTION,
    "exploration_fraction": registry.CYCLICAL_EXPLORATION_FRACTION,
}
NOISES = ("gaussian", "rademacher")
#: Schedules whose T is the length of the run unless `decay_epochs` is given.
RUN_LENGTH_SCHEDULES = ("cosine",)


class SettingsError(ValueError):
    """A setting that cannot run (a bad value, an unknown layer, a missing dataset...).

    `keys` names the settings involved, when known (the scripts show them as flags).
    """

    def __init__(self, message, keys=()):
        super().__init__(message)
        self.keys = tuple(keys)


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """The resolved settings of one optimizer; None only where the optimizer has no such setting.

    Attributes:
        optimizer: the name, e.g. "layer-ladam".
        lr: initial learning rate.
        lr_schedule: one of `applications.optimizers.LR_SCHEDULES`.
        decay_epochs: T of the schedules (or the cycle length), in epochs.
        epsilon: Keras's `epsilon` of the optimizer (None: SGD has none).
        sigma: initial noise level (None: a plain Keras optimizer).
        sigma_schedule: one of `applications.optimizers.SIGMA_SCHEDULES` (None: plain).
        noise: "gaussian" or "rademacher" (None: plain).
        langevin_layers: fraction, tuple of names or "all" (None: not a `layer-` optimizer).
        exploration_fraction: noiseless part of each cycle (None: not the cyclical sigma).
        options: further constructor arguments as sorted (KEY, VALUE) pairs.
    """

    optimizer: str
    lr: float
    lr_schedule: str
    decay_epochs: float
    epsilon: float | None
    sigma: float | None
    sigma_schedule: str | None
    noise: str | None
    langevin_layers: object
    exploration_fraction: float | None
    options: tuple = ()

    def as_dict(self):
        """The settings as a JSON-ready dict (tuples become lists)."""
        values = dataclasses.asdict(self)
        values["options"] = [list(pair) for pair in self.options]
        if isinstance(self.langevin_layers, tuple):
            values["langevin_layers"] = list(self.langevin_layers)
        return values

    def build(self, steps_per_epoch, seed=None):
        """The Keras optimizer, its schedules counting `steps_per_epoch` steps per epoch.

        `seed` is the noise seed of a Langevin optimizer (None: drawn from Python's `random`).
        """
        if isinstance(steps_per_epoch, bool) or not steps_per_epoch >= 1:
            raise SettingsError(
                f"Argument `steps_per_epoch` must be >= 1. Received: {steps_per_epoch!r}"
            )
        base, kind = registry.parse_name(self.optimizer)
        decay_steps = self.decay_epochs * steps_per_epoch
        learning_rate = _lr_schedule(self.lr_schedule, self.lr, decay_steps)
        options = dict(self.options)
        if self.epsilon is not None:
            options["epsilon"] = self.epsilon
        if kind == "plain":
            return registry.KERAS_CLASSES[base](learning_rate=learning_rate, **options)
        sigma = _sigma_schedule(self, decay_steps)
        layers = self.langevin_layers
        return registry.LANGEVIN_CLASSES[base](
            learning_rate=learning_rate,
            sigma=sigma,
            langevin_layers=None if layers in (None, "all") else _layers_argument(layers),
            seed=seed,
            noise=self.noise,
            **options,
        )


def resolve(
    optimizer,
    *,
    epochs=None,
    lr=None,
    lr_schedule=None,
    decay_epochs=None,
    epsilon=None,
    sigma=None,
    sigma_schedule=None,
    noise=None,
    langevin_layers=None,
    exploration_fraction=None,
    **options,
):
    """The settings `optimizer` runs with: the given values, the defaults for the others.

    Args:
        optimizer: a name of `applications.optimizers.OPTIMIZERS`.
        epochs: the length of the run, in epochs: the T of a "cosine" schedule when
            `decay_epochs` is None, and checked against a cyclical sigma that would never turn
            the noise on (None: not checked).
        lr, lr_schedule, decay_epochs, epsilon, sigma, sigma_schedule, noise, langevin_layers,
            exploration_fraction: the settings (see the module docstring); None: the default.
            Settings the optimizer does not use are dropped (see `unused`).
        **options: further arguments of the optimizer's constructor (e.g. `rho=0.99`).

    Raises:
        SettingsError: a bad value, named with the setting.
    """
    base, kind = registry.parse_name(optimizer)
    lr_schedule = _choice("lr_schedule", lr_schedule, registry.LR_SCHEDULES)
    sigma_schedule = _choice("sigma_schedule", sigma_schedule, registry.SIGMA_SCHEDULES)
    # (the sigma schedule counts for a plain optimizer too: compared with its Langevin form, it
    # gets the same T)
    spans_run = lr_schedule in RUN_LENGTH_SCHEDULES or sigma_schedule in RUN_LENGTH_SCHEDULES
    epochs = None if epochs is None else _positive("epochs", epochs)
    if decay_epochs is None and spans_run and epochs is None:
        raise SettingsError(
            "A 'cosine' schedule spans the run: give `epochs` or `decay_epochs`. Received: "
            f"lr_schedule={lr_schedule!r}, sigma_schedule={sigma_schedule!r}",
            keys=("lr_schedule", "sigma_schedule", "decay_epochs"),
        )
    if decay_epochs is None:
        decay_epochs = epochs if spans_run else PAPER_DECAY_EPOCHS
    decay_epochs = _positive("decay_epochs", decay_epochs)
    langevin = kind != "plain"
    cyclical = langevin and sigma_schedule == "cyclical"
    if exploration_fraction is not None and not cyclical:
        raise SettingsError(
            "Argument `exploration_fraction` is used only with sigma_schedule='cyclical' by a "
            f"Langevin optimizer. Received: exploration_fraction={exploration_fraction!r} "
            f"({optimizer}, sigma_schedule={sigma_schedule!r})",
            keys=("exploration_fraction", "sigma_schedule"),
        )
    chosen = OptimizerSettings(
        optimizer=optimizer,
        lr=_positive("lr", registry.PAPER_LR[base] if lr is None else lr),
        lr_schedule=lr_schedule,
        decay_epochs=decay_epochs,
        epsilon=_epsilon(base, epsilon),
        sigma=_non_negative("sigma", registry.PAPER_SIGMA[base] if sigma is None else sigma)
        if langevin
        else None,
        sigma_schedule=sigma_schedule if langevin else None,
        noise=_choice("noise", noise, NOISES) if langevin else None,
        langevin_layers=_layers(langevin_layers) if kind == "layer" else None,
        exploration_fraction=_fraction(exploration_fraction) if cyclical else None,
        options=tuple(sorted(options.items())),
    )
    if cyclical and epochs is not None:
        _check_samples(chosen, epochs)
    return chosen


def unused(names, **given):
    """The keys of `given` (settings that are not None) that none of the optimizers uses."""
    kinds = {registry.parse_name(name)[1] for name in names}
    uses = {
        "sigma": kinds != {"plain"},
        "sigma_schedule": kinds != {"plain"},
        "noise": kinds != {"plain"},
        "langevin_layers": "layer" in kinds,
        "epsilon": any(_keras_epsilon(registry.parse_name(name)[0]) for name in names),
    }
    return [key for key, value in given.items() if value is not None and not uses.get(key, True)]


def uses_epsilon(name):
    """Whether the optimizer `name` has an `epsilon` (Adam, RMSprop, Adadelta; not SGD)."""
    return _keras_epsilon(registry.parse_name(name)[0]) is not None


# ----------------------------------------------------------------------------- the pieces


def _lr_schedule(name, lr, decay_steps):
    if name == "inverse-time":
        return keras.optimizers.schedules.InverseTimeDecay(
            lr, decay_steps=decay_steps, decay_rate=1.0
        )
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=decay_steps, alpha=0.0)
    if name == "cyclical-cosine":
        return kl.sampling.CyclicalCosineDecay(lr, max(1, round(decay_steps)))
    return lr


def _sigma_schedule(chosen, decay_steps):
    sigma, name = chosen.sigma, chosen.sigma_schedule
    if name == "log":
        return kl.schedules.LogAnnealing(sigma, decay=1.0 / decay_steps)
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(sigma, decay_steps=decay_steps, alpha=0.0)
    if name == "cyclical":
        cycle_steps = max(1, round(decay_steps))
        return kl.sampling.CyclicalSigma(sigma, cycle_steps, chosen.exploration_fraction)
    return sigma


def _check_samples(chosen, epochs):
    """Refuses a cyclical sigma that stays 0 for the whole run (it would never sample)."""
    noise_from = chosen.exploration_fraction * chosen.decay_epochs
    if epochs <= noise_from:
        raise SettingsError(
            f"sigma_schedule='cyclical' never turns the noise on in {epochs:g} epochs: each "
            f"cycle of decay_epochs={chosen.decay_epochs:g} epochs is noiseless for its first "
            f"exploration_fraction={chosen.exploration_fraction:g} (up to epoch "
            f"{noise_from:g}). Give more epochs than that, or shorter cycles (decay_epochs).",
            keys=("sigma_schedule", "epochs", "decay_epochs"),
        )


def _keras_epsilon(base):
    parameter = inspect.signature(registry.KERAS_CLASSES[base]).parameters.get("epsilon")
    return None if parameter is None else parameter.default


def _epsilon(base, epsilon):
    keras_default = _keras_epsilon(base)
    if keras_default is None:
        return None
    epsilon = DEFAULTS["epsilon"] if epsilon is None else epsilon
    if epsilon == "paper":
        return float(registry.PAPER_EPSILON.get(base, keras_default))
    if epsilon == "keras":
        return float(keras_default)
    return _positive("epsilon", epsilon, "'paper', 'keras' or a positive number")


def _layers(value):
    value = DEFAULTS["langevin_layers"] if value is None else value
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if value == "all":
        return value
    if isinstance(value, str):
        return (value,)
    fraction = _positive("langevin_layers", value, "a fraction in (0, 1], names or 'all'")
    if fraction > 1:
        raise SettingsError(
            f"Argument `langevin_layers` must be a fraction in (0, 1], names or 'all'. "
            f"Received: langevin_layers={value!r}"
        )
    return fraction


def _layers_argument(layers):
    return list(layers) if isinstance(layers, tuple) else layers


def _fraction(value):
    value = DEFAULTS["exploration_fraction"] if value is None else value
    value = _non_negative("exploration_fraction", value)
    if value >= 1:
        raise SettingsError(
            f"Argument `exploration_fraction` must be in [0, 1). Received: {value!r}"
        )
    return value


def _choice(key, value, choices):
    value = DEFAULTS[key] if value is None else value
    if value not in choices:
        raise SettingsError(
            f"Argument `{key}` must be one of {choices}. Received: {value!r}", keys=(key,)
        )
    return value


def _number(key, value, accept, description):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        accepted = False
    else:
        accepted = accept(value)
    if not accepted:
        raise SettingsError(
            f"Argument `{key}` must be {description}. Received: {key}={value!r}", keys=(key,)
        )
    return float(value)


def _positive(key, value, description="a positive number"):
    return _number(key, value, lambda x: x > 0, description)


def _non_negative(key, value):
    return _number(key, value, lambda x: x >= 0, "a number >= 0")
