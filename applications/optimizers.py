"""Optimizers by name, with the paper's learning-rate and noise schedules.

Names: sgd, lsgd, layer-lsgd, adam, ladam, layer-ladam, rmsprop, lrmsprop, layer-lrmsprop,
adadelta, ladadelta, layer-ladadelta; beyond the paper adamw, ladamw, layer-ladamw, nadam,
lnadam, layer-lnadam, lsghmc, layer-lsghmc (SGHMC: the noise in the momentum buffer, momentum
0.9 unless `momentum` is given; `sgd` with that momentum is its noiseless form). `l<base>` adds Langevin noise to every layer,
`layer-l<base>` only to the first `langevin_layers` fraction (the paper's 0.3 by default).

The paper's schedules (from the author's experiment script), with T the number of steps in
`decay_epochs` epochs (20 in the paper):

* learning rate `lr_t = lr_0 / (1 + t / T)` (Keras's `InverseTimeDecay` with rate 1);
* noise `sigma_t = sigma_0 / sqrt(log(e + t / T))` (`keras_langevin.schedules.LogAnnealing`).

For posterior sampling (cyclical SG-MCMC, Zhang et al. 2020; see docs/guide/posterior_sampling.md), with
T the cycle length: `lr_schedule="cyclical-cosine"` (`keras_langevin.sampling.CyclicalCosineDecay`,
a cosine from lr_0 to ~0 in every cycle) and `sigma_schedule="cyclical"`
(`keras_langevin.sampling.CyclicalSigma`: 0 in the first `exploration_fraction` of every cycle,
sigma_0 afterwards). Further keyword arguments of `make_optimizer` go to the optimizer's
constructor (e.g. `rho=0.99` for `lrmsprop` as pSGLD).

`lr_schedule="cosine"` and `sigma_schedule="cosine"` (Keras's `CosineDecay`) anneal to 0 at T,
which by default is the run's length: a run that ends converged (the default of `train`).

The defaults are resolved in one place, `applications.settings`; this module is the registry of
names, classes and the paper's values per base optimizer.

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
from keras_langevin.layer import PAPER_LAYER_FRACTION  # noqa: F401 (re-exported)

BASES = ("sgd", "adam", "rmsprop", "adadelta")
#: Beyond the paper: AdamW and Nadam (plain and Langevin), and SGHMC (Langevin forms only; its
#: noiseless form is `sgd` with the same momentum). Not in the benchmark's pairs.
MORE_BASES = ("adamw", "nadam")
LANGEVIN_ONLY = ("sghmc",)
OPTIMIZERS = tuple(
    name for base in BASES + MORE_BASES for name in (base, f"l{base}", f"layer-l{base}")
) + tuple(name for base in LANGEVIN_ONLY for name in (f"l{base}", f"layer-l{base}"))

# Each base name's Keras optimizer and its Langevin class.
KERAS_CLASSES = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "adadelta": keras.optimizers.Adadelta,
    "adamw": keras.optimizers.AdamW,
    "nadam": keras.optimizers.Nadam,
    "sghmc": keras.optimizers.SGD,
}
LANGEVIN_CLASSES = {
    "sgd": kl.LSGD,
    "adam": kl.LAdam,
    "rmsprop": kl.LRMSprop,
    "adadelta": kl.LAdadelta,
    "adamw": kl.LAdamW,
    "nadam": kl.LNadam,
    "sghmc": kl.LSGHMC,
}

# The paper's initial values: lr 5e-3 and sigma 5e-3, except Adadelta (lr 0.1, sigma 5e-2).
# AdamW, Nadam and SGHMC, not in the paper, take Adam's and SGD's values; Nadam adds epsilon to
# sqrt(v_t / (1 - beta_2^t)), exactly where the author's Adam adds 1e-6.
PAPER_LR = {"sgd": 5e-3, "adam": 5e-3, "rmsprop": 5e-3, "adadelta": 0.1}
PAPER_LR |= {"adamw": 5e-3, "nadam": 5e-3, "sghmc": 5e-3}
PAPER_SIGMA = {"sgd": 5e-3, "adam": 5e-3, "rmsprop": 5e-3, "adadelta": 5e-2}
PAPER_SIGMA |= {"adamw": 5e-3, "nadam": 5e-3, "sghmc": 5e-3}
PAPER_EPSILON = {"adam": 1e-6, "rmsprop": 1e-12, "adadelta": 1e-6, "adamw": 1e-6, "nadam": 1e-6}
EPSILON_POLICIES = ("paper", "keras")
#: The learning-rate schedules, with T = `decay_epochs` epochs worth of steps and t the step.
LR_SCHEDULE_DOCS = {
    "inverse-time": "lr_0 / (1 + t/T), the paper's",
    "cosine": "lr_0 (1 + cos(pi min(t, T)/T)) / 2: from lr_0 down to 0 at step T (T defaults to "
    "the run's length)",
    "constant": "lr_0 at every step",
    "cyclical-cosine": "the cosine from lr_0 to ~0 restarted every T steps (cyclical SG-MCMC)",
}
#: The noise-level schedules (Langevin optimizers), with the same T.
SIGMA_SCHEDULE_DOCS = {
    "log": "sigma_0 / sqrt(log(e + t/T)), the paper's slow annealing",
    "cosine": "sigma_0 (1 + cos(pi min(t, T)/T)) / 2: from sigma_0 down to 0 at step T (T "
    "defaults to the run's length)",
    "constant": "sigma_0 at every step",
    "cyclical": "0 in the first exploration fraction (0.8) of every cycle of T steps, sigma_0 "
    "in the rest (cyclical SG-MCMC); refused if the run ends before the noise turns on",
}
LR_SCHEDULES = tuple(LR_SCHEDULE_DOCS)
SIGMA_SCHEDULES = tuple(SIGMA_SCHEDULE_DOCS)
#: Fraction of each cycle without noise of `sigma_schedule="cyclical"` unless given.
CYCLICAL_EXPLORATION_FRACTION = 0.8


def parse_name(name):
    """Splits an optimizer name into (base, kind) with kind in {"plain", "langevin", "layer"}."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Argument `optimizer` must be one of {OPTIMIZERS}. Received: {name!r}")
    if name.startswith("layer-l"):
        return name[len("layer-l") :], "layer"
    if name in BASES + MORE_BASES:
        return name, "plain"
    return name[1:], "langevin"


def make_optimizer(name, steps_per_epoch, seed=None, **settings):
    """Builds the named optimizer with the paper's schedules by default.

    `settings` are those of `applications.settings.resolve` (lr, lr_schedule, decay_epochs,
    epsilon, sigma, sigma_schedule, noise, langevin_layers, exploration_fraction, epochs, and
    further constructor arguments such as `rho` or `momentum`); absent ones take their
    defaults there. `steps_per_epoch` sets the T of the schedules, `seed` the noise seed.
    """
    from applications import settings as settings_lib

    return settings_lib.resolve(name, **settings).build(steps_per_epoch, seed=seed)
