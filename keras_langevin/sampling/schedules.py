"""Cyclical step sizes for cyclical SG-MCMC (Zhang et al., "Cyclical Stochastic Gradient MCMC
for Bayesian Deep Learning", ICLR 2020).

Training is split into cycles of `cycle_steps` optimizer steps. In every cycle the learning rate
follows a cosine from its initial value down to (nearly) zero, and restarts at the next cycle.
The first `exploration_fraction` of each cycle is the exploration part: large steps and no noise,
to move to a new mode fast. The rest is the sampling part: small steps with the posterior noise
level, where samples are collected (typically at the end of each cycle).

    lr_t    = initial_learning_rate / 2 * (cos(pi * r_t) + 1)
    sigma_t = 0 if r_t < exploration_fraction else sigma
    r_t     = (t mod cycle_steps) / cycle_steps

with `t` the optimizer's step counter (`iterations`, 0 for the first update). Both are
`keras.optimizers.schedules.LearningRateSchedule`s: pass them as `learning_rate=` and `sigma=`
of a Langevin optimizer. Sigma is exactly `0.0` in the exploration part, so the noise term adds
exactly zero there.
"""

import math

import keras
from keras import ops

from keras_langevin.sampling import _checks


def _position(step, cycle_steps):
    """`t mod cycle_steps` as an int32 tensor (steps beyond 2**31 are not supported)."""
    step = ops.convert_to_tensor(step)
    if "int" not in str(step.dtype):
        step = ops.floor(step)
    return ops.mod(ops.cast(step, "int32"), cycle_steps)


class _Cyclical(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, cycle_steps, name):
        super().__init__()
        self.cycle_steps = _checks.positive_int("cycle_steps", cycle_steps)
        self.name = name

    def cycle_ends(self, num_steps):
        """Step counts at which a cycle is complete, up to `num_steps`: `[K, 2K, ...]`.

        A count `s` means "after `s` optimizer updates" (`optimizer.iterations == s`).
        """
        num_steps = _checks.positive_int("num_steps", num_steps, minimum=0)
        return list(range(self.cycle_steps, num_steps + 1, self.cycle_steps))


@keras.saving.register_keras_serializable(package="keras_langevin")
class CyclicalCosineDecay(_Cyclical):
    """A cosine learning rate that restarts every `cycle_steps` steps (cSG-MCMC).

    `lr_t = initial_learning_rate / 2 * (cos(pi * (t mod cycle_steps) / cycle_steps) + 1)`:
    `initial_learning_rate` at the first step of each cycle, decreasing to
    `initial_learning_rate / 2 * (1 - cos(pi / cycle_steps))` (close to 0) at its last step.

    Args:
        initial_learning_rate: float > 0, the learning rate at the start of every cycle.
        cycle_steps: int >= 1, the length of a cycle in optimizer steps (for cycles of `c`
            epochs: `c * steps_per_epoch`).
        name: optional name of the schedule.
    """

    def __init__(self, initial_learning_rate, cycle_steps, name="CyclicalCosineDecay"):
        super().__init__(cycle_steps, name)
        self.initial_learning_rate = _checks.real(
            "initial_learning_rate", initial_learning_rate, low=0.0, low_open=True
        )

    def __call__(self, step):
        position = ops.cast(_position(step, self.cycle_steps), "float32")
        angle = ops.multiply(position, math.pi / self.cycle_steps)
        return ops.multiply(self.initial_learning_rate / 2.0, ops.add(ops.cos(angle), 1.0))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "cycle_steps": self.cycle_steps,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_langevin")
class CyclicalSigma(_Cyclical):
    """Noise off in each cycle's exploration part, `sigma` in its sampling part (cSG-MCMC).

    At step `t`, with `p = t mod cycle_steps`: exactly `0.0` while
    `p < exploration_steps = ceil(exploration_fraction * cycle_steps)`, `sigma` afterwards.
    Use it with `CyclicalCosineDecay` of the same `cycle_steps`, and `sigma` from
    `keras_langevin.sampling.posterior_sigma`.

    Args:
        sigma: float >= 0, the noise level of the sampling part.
        cycle_steps: int >= 1, the length of a cycle in optimizer steps.
        exploration_fraction: float in [0, 1), the fraction of each cycle without noise
            (Zhang et al. use 0.8 to 0.94 for their image classifiers).
        name: optional name of the schedule.
    """

    def __init__(self, sigma, cycle_steps, exploration_fraction, name="CyclicalSigma"):
        super().__init__(cycle_steps, name)
        self.sigma = _checks.real("sigma", sigma, low=0.0)
        self.exploration_fraction = _checks.real(
            "exploration_fraction", exploration_fraction, low=0.0, high=1.0, high_open=True
        )
        # Rounded first, so that 0.7 * 10 (7.000000000000001 in floating point) gives 7.
        self.exploration_steps = math.ceil(round(self.exploration_fraction * self.cycle_steps, 9))

    def __call__(self, step):
        position = _position(step, self.cycle_steps)
        sampling = ops.greater_equal(position, self.exploration_steps)
        return ops.where(sampling, self.sigma, 0.0)

    def is_sampling(self, step):
        """Whether the update at step `t` (0 for the first update) is in a sampling part."""
        return step % self.cycle_steps >= self.exploration_steps

    def sampling_epochs(self, steps_per_epoch, num_epochs, samples_per_cycle=1):
        """The epochs after which to collect samples: the last `samples_per_cycle` epochs of
        each cycle, all inside its sampling part.

        Epochs are counted from 1 (epoch `e` ends after `e * steps_per_epoch` updates), as
        `PosteriorSampler(epochs=...)` expects. With the usual setup, cycles of a whole number
        of epochs, `samples_per_cycle=1` gives the cycle ends.

        Args:
            steps_per_epoch: int >= 1, optimizer steps per epoch.
            num_epochs: int >= 0, the length of the run in epochs.
            samples_per_cycle: int >= 1.

        Raises:
            ValueError: if a cycle has fewer than `samples_per_cycle` epoch ends whose last
                update is in its sampling part.
        """
        steps_per_epoch = _checks.positive_int("steps_per_epoch", steps_per_epoch)
        num_epochs = _checks.positive_int("num_epochs", num_epochs, minimum=0)
        samples_per_cycle = _checks.positive_int("samples_per_cycle", samples_per_cycle)
        by_cycle = {}
        # Enough epochs to see every cycle that begins before the end of the run completely.
        horizon = num_epochs + math.ceil(self.cycle_steps / steps_per_epoch) + 1
        for epoch in range(1, horizon + 1):
            last_update = epoch * steps_per_epoch - 1
            if self.is_sampling(last_update):
                by_cycle.setdefault(last_update // self.cycle_steps, []).append(epoch)
        chosen = []
        for cycle in range(math.ceil(num_epochs * steps_per_epoch / self.cycle_steps)):
            ends = by_cycle.get(cycle, [])
            if len(ends) < samples_per_cycle:
                raise ValueError(
                    f"Argument `samples_per_cycle` must be at most the number of epochs that end "
                    f"in the sampling part of cycle {cycle} ({len(ends)}: cycle_steps="
                    f"{self.cycle_steps}, exploration_fraction={self.exploration_fraction}, "
                    f"steps_per_epoch={steps_per_epoch}). "
                    f"Received: samples_per_cycle={samples_per_cycle}"
                )
            chosen.extend(e for e in ends[-samples_per_cycle:] if e <= num_epochs)
        return chosen

    def get_config(self):
        return {
            "sigma": self.sigma,
            "cycle_steps": self.cycle_steps,
            "exploration_fraction": self.exploration_fraction,
            "name": self.name,
        }
