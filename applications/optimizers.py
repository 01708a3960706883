"""Optimizers by name, with the paper's learning-rate and noise schedules.

Names: sgd, lsgd, layer-lsgd, adam, ladam, layer-ladam, rmsprop, lrmsprop, layer-lrmsprop,
adadelta, ladadelta, layer-ladadelta. `l<base>` adds Langevin noise to every layer,
`layer-l<base>` only to the first `langevin_layers` fraction (the paper's 0.3 by default).

The paper's schedules (from the author's experiment script), with T the number of steps in
`decay_epochs` epochs (20 in the paper):

* learning rate `lr_t = lr_0 / (1 + t / T)` (Keras's `InverseTimeDecay` with rate 1);
* noise `sigma_t = sigma_0 / sqrt(log(e + t / T))` (`keras_langevin.schedules.LogAnnealing`).

For posterior sampling (cyclical SG-MCMC, Zhang et al. 2020; see docs/posterior_sampling.md), with
T the cycle length: `lr_schedule="cyclical-cosine"` (`keras_langevin.sampling.CyclicalCosineDecay`,
a cosine from lr_0 to ~0 in every cycle) and `sigma_schedule="cyclical"`
(`keras_langevin.sampling.CyclicalSigma`: 0 in the first `exploration_fraction` of every cycle,
sigma_0 afterwards). Further keyword arguments of `make_optimizer` go to the optimizer's
constructor (e.g. `rho=0.99` for `lrmsprop` as pSGLD).

The author's preconditioners carry a bias of 1e-6 where Keras's optimizers have `epsilon`
(default 1e-7), in other places of the formula. `epsilon="paper"` maps it onto Keras's form,
for the noiseless optimizers too (so that a Langevin optimizer and its base differ only by the
noise):

* Adam: the author adds 1e-6 to the square root of the bias-corrected second moment,
  `sqrt(v_t / (1 - beta_2^t)) + 1e-6`; Keras adds epsilon to `sqrt(v_t)`, so the exact match
  is `epsilon = 1e-6 * sqrt(1 - beta_2^t)`, which tends to 1e-6 after a few thousand steps
  (0.03e-6 at the first step, 0.8e-6 after 1,000 steps). Keras's epsilon is a constant: we use
  1e-6, the author's value in the long run (early steps get a slightly larger bias than his).
  The largest preconditioner, where a gradient is always zero, is then about 1e6 instead of
  1e7 with Keras's default.
* RMSprop: the author uses `1 / (sqrt(v_t) + 1e-6)`, Keras `1 / sqrt(v_t + epsilon)`.
  `epsilon = 1e-12 = (1e-6)^2` gives the same preconditioner where v_t = 0 (1e6) and where
  v_t >> 1e-12; in between the two differ by at most a factor sqrt(2). Both use rho 0.9.
* Adadelta: the author puts 1e-6 inside both square roots, as Keras does with epsilon, and
  uses rho 0.95, Keras's default: `epsilon = 1e-6` is exact.

`epsilon="keras"` keeps Keras's defaults; a number sets Keras's `epsilon` directly.
"""

import keras

import keras_langevin as kl
from keras_langevin.layer import PAPER_LAYER_FRACTION

BASES = ("sgd", "adam", "rmsprop", "adadelta")
OPTIMIZERS = tuple(name for base in BASES for name in (base, f"l{base}", f"layer-l{base}"))

# Each base name's Keras optimizer and its Langevin class.
KERAS_CLASSES = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "adadelta": keras.optimizers.Adadelta,
}
LANGEVIN_CLASSES = {
    "sgd": kl.LSGD,
    "adam": kl.LAdam,
    "rmsprop": kl.LRMSprop,
    "adadelta": kl.LAdadelta,
}

# The paper's initial values: lr 5e-3 and sigma 5e-3, except Adadelta (lr 0.1, sigma 5e-2).
PAPER_LR = {"sgd": 5e-3, "adam": 5e-3, "rmsprop": 5e-3, "adadelta": 0.1}
PAPER_SIGMA = {"sgd": 5e-3, "adam": 5e-3, "rmsprop": 5e-3, "adadelta": 5e-2}
PAPER_EPSILON = {"adam": 1e-6, "rmsprop": 1e-12, "adadelta": 1e-6}
EPSILON_POLICIES = ("paper", "keras")
LR_SCHEDULES = ("inverse-time", "constant", "cyclical-cosine")
SIGMA_SCHEDULES = ("log", "constant", "cyclical")
#: Fraction of each cycle without noise of `sigma_schedule="cyclical"` unless given.
CYCLICAL_EXPLORATION_FRACTION = 0.8


def parse_name(name):
    """Splits an optimizer name into (base, kind) with kind in {"plain", "langevin", "layer"}."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Argument `optimizer` must be one of {OPTIMIZERS}. Received: {name!r}")
    if name.startswith("layer-l"):
        return name[len("layer-l") :], "layer"
    if name in BASES:
        return name, "plain"
    return name[1:], "langevin"


def make_optimizer(
    name,
    steps_per_epoch,
    lr=None,
    lr_schedule="inverse-time",
    sigma=None,
    sigma_schedule="log",
    decay_epochs=20,
    langevin_layers=PAPER_LAYER_FRACTION,
    seed=None,
    noise="gaussian",
    epsilon="paper",
    exploration_fraction=None,
    **options,
):
    """Builds the named optimizer with the paper's schedules by default.

    Args:
        name: one of `OPTIMIZERS`.
        steps_per_epoch: optimizer steps in one epoch (sets T of the schedules).
        lr: initial learning rate; None takes the paper's value for the base optimizer.
        lr_schedule: "inverse-time" (the paper's) or "constant".
        sigma: initial noise level for Langevin names; None takes the paper's value.
        sigma_schedule: "log" (the paper's annealing) or "constant".
        decay_epochs: T of both schedules, in epochs.
        langevin_layers: fraction (or names, or "all") for the `layer-` names.
        seed: noise seed (None: drawn from Python's `random`).
        noise: "gaussian" or "rademacher".
        epsilon: "paper" (`PAPER_EPSILON`, the author's bias in Keras's form), "keras"
            (Keras's default) or a number; not used by SGD.
        exploration_fraction: the noiseless fraction of each cycle of `sigma_schedule=
            "cyclical"` (default `CYCLICAL_EXPLORATION_FRACTION`); refused with other schedules.
        **options: further arguments of the optimizer's constructor (e.g. `rho`, `momentum`).
    """
    base, kind = parse_name(name)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"Argument `lr_schedule` must be one of {LR_SCHEDULES}. Received: {lr_schedule!r}"
        )
    if sigma_schedule not in SIGMA_SCHEDULES:
        raise ValueError(
            f"Argument `sigma_schedule` must be one of {SIGMA_SCHEDULES}. "
            f"Received: {sigma_schedule!r}"
        )
    if steps_per_epoch < 1 or decay_epochs <= 0:
        raise ValueError(
            "Arguments `steps_per_epoch` and `decay_epochs` must be positive. Received: "
            f"steps_per_epoch={steps_per_epoch!r}, decay_epochs={decay_epochs!r}"
        )
    if exploration_fraction is not None and (kind == "plain" or sigma_schedule != "cyclical"):
        raise ValueError(
            "Argument `exploration_fraction` is used only with sigma_schedule='cyclical'. "
            f"Received: exploration_fraction={exploration_fraction!r}"
        )
    decay_steps = decay_epochs * steps_per_epoch
    cycle_steps = max(1, round(decay_steps))
    lr = PAPER_LR[base] if lr is None else float(lr)
    learning_rate = lr
    if lr_schedule == "inverse-time":
        learning_rate = keras.optimizers.schedules.InverseTimeDecay(
            lr, decay_steps=decay_steps, decay_rate=1.0
        )
    elif lr_schedule == "cyclical-cosine":
        learning_rate = kl.sampling.CyclicalCosineDecay(lr, cycle_steps)
    options = {**({} if base == "sgd" else _epsilon_option(base, epsilon)), **options}
    if kind == "plain":
        return KERAS_CLASSES[base](learning_rate=learning_rate, **options)
    sigma = PAPER_SIGMA[base] if sigma is None else float(sigma)
    noise_level = sigma
    if sigma_schedule == "log":
        noise_level = kl.schedules.LogAnnealing(sigma, decay=1.0 / decay_steps)
    elif sigma_schedule == "cyclical":
        if exploration_fraction is None:
            exploration_fraction = CYCLICAL_EXPLORATION_FRACTION
        noise_level = kl.sampling.CyclicalSigma(sigma, cycle_steps, exploration_fraction)
    return LANGEVIN_CLASSES[base](
        learning_rate=learning_rate,
        sigma=noise_level,
        langevin_layers=langevin_layers if kind == "layer" and langevin_layers != "all" else None,
        seed=seed,
        noise=noise,
        **options,
    )


def _epsilon_option(base, epsilon):
    if epsilon == "paper":
        return {"epsilon": PAPER_EPSILON[base]}
    if epsilon in (None, "keras"):
        return {}
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(
            f"Argument `epsilon` must be 'paper', 'keras' or a positive number. "
            f"Received: epsilon={epsilon!r}"
        )
    return {"epsilon": float(epsilon)}
