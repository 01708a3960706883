"""The sampling methods compared with the reference, run with the project's optimizers.

Every method trains the Keras model of the problem (`problems.build_keras_model`: the mean
cross-entropy plus `keras_langevin.sampling.gaussian_prior(s, N)` on every kernel and bias, so
the loss is U / N) with `applications.optimizers.make_optimizer` and collects its weights with
`keras_langevin.sampling.PosteriorSampler`. The budget (`Budget`) is counted in epochs: one
epoch is one pass of minibatch gradients over the N training examples.

    map        one model, Adam (lr `MAP_LR`): `epochs`
    ensemble   `chains` models as `map`, each from its own initial weights and data order,
               each fully trained: `chains` x `epochs`
    sgld       `chains` chains of LSGD (lr `SGLD_LR`, sigma = posterior_sigma(N, T)); burn-in
               half the epochs, then `samples_per_chain` samples evenly spaced
    psgld      the same with LRMSprop (rho `PSGLD_RHO`, lr `PSGLD_LR`, Keras's epsilon)
    csgld      `chains` chains of cyclical LSGD (cosine lr from `CSGLD_LR`, CyclicalSigma, no
               noise in the first `EXPLORATION_FRACTION` of a cycle), `cycles` cycles per
               chain, samples after the last `samples_per_cycle` epochs of each
    sghmc      as sgld with LSGHMC (the noise in the momentum buffer), momentum
               `SGHMC_MOMENTUM`, lr `SGHMC_LR`, sigma = posterior_sigma(N, T, momentum=mu)
    csghmc     as csgld with LSGHMC, momentum `SGHMC_MOMENTUM`, cosine lr from `CSGHMC_LR`,
               CyclicalSigma of posterior_sigma(N, T, momentum=mu)

A further method joins with `register(Method(...))`: a name, a label, whether it takes a
temperature, and a function `(budget, num_examples, steps_per_epoch, temperature) -> RunPlan`.
The learning rates were fixed before any comparison with the reference. Those of SGHMC and
cyclical SGHMC follow a rule, not a search: with momentum mu a constant gradient moves the
weights by lr / (1 - mu) times the gradient per step (docs/guide/sghmc.md), so each takes the
learning rate of its SGLD counterpart times (1 - mu): the same effective step (and, with
posterior_sigma(N, T, momentum=mu), the same noise variance per step on the weights).
"""

import dataclasses
import json
import math
import os
import shutil
import warnings

import numpy as np

from applications import files
from applications.reference import problems

MAP_LR = 1e-2
SGLD_LR = 0.05
CSGLD_LR = 0.1
PSGLD_LR = 1e-3
PSGLD_RHO = 0.99
SGHMC_MOMENTUM = 0.9
# The rule above, written out (0.05 * (1 - 0.9) = 0.005, 0.1 * (1 - 0.9) = 0.01); a test checks it.
SGHMC_LR = 0.005
CSGHMC_LR = 0.01
EXPLORATION_FRACTION = 0.8


@dataclasses.dataclass(frozen=True)
class Budget:
    """Epochs per model or chain; chains per method (members of the ensemble)."""

    epochs: int = 400
    chains: int = 4
    batch_size: int = 100
    samples_per_chain: int = 10
    cycles: int = 4
    samples_per_cycle: int = 2

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Budget: {field.name} must be an integer >= 1, got {value!r}")
        if self.epochs < 2 or self.epochs % self.cycles:
            raise ValueError(
                f"Budget: epochs ({self.epochs}) must be >= 2 and a multiple of cycles "
                f"({self.cycles})"
            )


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """`runs` trainings of `optimizer` (make_optimizer's name and settings), each sampled by
    a `PosteriorSampler(**sampler)`, for `epochs` epochs of minibatches of `batch_size`."""

    optimizer: str
    settings: dict
    sampler: dict
    runs: int
    epochs: int
    batch_size: int


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    label: str
    tempered: bool  # takes a posterior temperature (the Langevin methods)
    plan: object  # (budget, num_examples, steps_per_epoch, temperature) -> RunPlan


def _length(budget):
    return budget.epochs, budget.batch_size


def _map_plan(budget, n, steps, temperature, runs=1):
    settings = {"lr": MAP_LR, "lr_schedule": "constant", "epsilon": "keras"}
    return RunPlan("adam", settings, {"epochs": [budget.epochs]}, runs, *_length(budget))


def _ensemble_plan(budget, n, steps, temperature):
    return _map_plan(budget, n, steps, temperature, runs=budget.chains)


def _chain_sampler(budget):
    burn_in = budget.epochs // 2
    every = max(1, (budget.epochs - burn_in) // budget.samples_per_chain)
    return {"burn_in_epochs": burn_in, "every_epochs": every}


def _chain_plan(budget, n, temperature, optimizer, lr, momentum=0.0):
    """`chains` chains at a constant learning rate and sigma, sampled after a burn-in."""
    from keras_langevin.sampling import posterior_sigma

    settings = {"lr": lr, "lr_schedule": "constant", "sigma_schedule": "constant"}
    settings["sigma"] = posterior_sigma(n, temperature, momentum=momentum)
    if momentum:
        settings["momentum"] = momentum
    return RunPlan(optimizer, settings, _chain_sampler(budget), budget.chains, *_length(budget))


def _sgld_plan(budget, n, steps, temperature):
    return _chain_plan(budget, n, temperature, "lsgd", SGLD_LR)


def _psgld_plan(budget, n, steps, temperature):
    from keras_langevin.sampling import posterior_sigma

    settings = {"lr": PSGLD_LR, "lr_schedule": "constant", "sigma_schedule": "constant"}
    settings.update(sigma=posterior_sigma(n, temperature), rho=PSGLD_RHO, epsilon="keras")
    return RunPlan("lrmsprop", settings, _chain_sampler(budget), budget.chains, *_length(budget))


def _sghmc_plan(budget, n, steps, temperature):
    return _chain_plan(budget, n, temperature, "lsghmc", SGHMC_LR, SGHMC_MOMENTUM)


def _cyclical_plan(budget, n, steps, temperature, optimizer="lsgd", lr=CSGLD_LR, momentum=0.0):
    from keras_langevin.sampling import CyclicalSigma, posterior_sigma

    sigma = posterior_sigma(n, temperature, momentum=momentum)
    cycle_epochs = budget.epochs // budget.cycles
    settings = {
        "lr": lr,
        "lr_schedule": "cyclical-cosine",
        "sigma": sigma,
        "sigma_schedule": "cyclical",
        "decay_epochs": cycle_epochs,
        "exploration_fraction": EXPLORATION_FRACTION,
    }
    if momentum:
        settings["momentum"] = momentum
    schedule = CyclicalSigma(sigma, cycle_epochs * steps, EXPLORATION_FRACTION)
    epochs = schedule.sampling_epochs(steps, budget.epochs, budget.samples_per_cycle)
    return RunPlan(optimizer, settings, {"epochs": epochs}, budget.chains, *_length(budget))


def _csgld_plan(budget, n, steps, temperature):
    return _cyclical_plan(budget, n, steps, temperature)


def _csghmc_plan(budget, n, steps, temperature):
    return _cyclical_plan(budget, n, steps, temperature, "lsghmc", CSGHMC_LR, SGHMC_MOMENTUM)


METHODS = {}


def register(method):
    """Adds `method` to the comparison (its name must be new)."""
    if method.name in METHODS:
        raise ValueError(f"register: a method named {method.name!r} exists")
    METHODS[method.name] = method


for _method in (
    Method("map", "MAP (Adam, one model)", False, _map_plan),
    Method("ensemble", "deep ensemble (Adam)", False, _ensemble_plan),
    Method("sgld", "SGLD (LSGD)", True, _sgld_plan),
    Method("psgld", "pSGLD (LRMSprop)", True, _psgld_plan),
    Method("csgld", "cyclical SGLD (LSGD)", True, _csgld_plan),
    Method("sghmc", "SGHMC (LSGHMC)", True, _sghmc_plan),
    Method("csghmc", "cyclical SGHMC (LSGHMC)", True, _csghmc_plan),
):
    register(_method)


def run_seed(seed, run):
    """The seed of run `run` of a method for `seed` (its initial weights, data order, noise)."""
    return int(np.random.SeedSequence((seed, run)).generate_state(1)[0] % 2**31)


def train_run(problem, data, prior_std, run_plan, seed, directory):
    """Trains one run (resumable at the run: a finished one is read back, an unfinished one
    is started over) and returns its samples, flat `(S, P)`."""
    import keras

    from applications.optimizers import make_optimizer
    from keras_langevin.sampling import PosteriorSampler, load_samples

    done = os.path.join(directory, "done.json")
    samples_dir = os.path.join(directory, "samples")
    n = data.train_size
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = problems.build_keras_model(problem, prior_std, n, data.x_train.shape[1])
    if not os.path.exists(done):
        shutil.rmtree(directory, ignore_errors=True)
        steps = math.ceil(n / run_plan.batch_size)
        optimizer = make_optimizer(
            run_plan.optimizer, steps, seed=seed, epochs=run_plan.epochs, **run_plan.settings
        )
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        with warnings.catch_warnings():
            # MAP and the ensemble keep their last weights with the sampler, knowingly.
            warnings.filterwarnings("ignore", "PosteriorSampler: the optimizer .* adds no noise")
            model.fit(
                data.x_train,
                data.y_train,
                batch_size=run_plan.batch_size,
                epochs=run_plan.epochs,
                shuffle=True,
                verbose=0,
                callbacks=[PosteriorSampler(samples_dir, **run_plan.sampler)],
            )
        files.write_json(done, {"seed": seed})
        keras.backend.clear_session()  # read the samples into a model without an optimizer
        model = problems.build_keras_model(problem, prior_std, n, data.x_train.shape[1])
    thetas = []
    for sample in load_samples(samples_dir):
        model.load_weights(sample.path)
        thetas.append(problems.flatten(model.get_weights()))
    keras.backend.clear_session()
    return np.stack(thetas)


def run_method(name, problem, data, prior_std, budget, temperature, seed, directory, log=print):
    """Trains every run of method `name` for `seed`; returns `(samples (S, P), per_run,
    plan)` with `per_run` the number of samples of each run."""
    method = METHODS[name]
    steps = math.ceil(data.train_size / budget.batch_size)
    run_plan = method.plan(budget, data.train_size, steps, temperature)
    thetas, per_run = [], []
    for run in range(run_plan.runs):
        run_dir = os.path.join(directory, f"run{run}")
        samples = train_run(problem, data, prior_std, run_plan, run_seed(seed, run), run_dir)
        thetas.append(samples)
        per_run.append(len(samples))
    log(f"  {problem} {name} T={temperature:g} seed {seed}: {sum(per_run)} samples")
    return np.concatenate(thetas), per_run, run_plan


def plan_settings(run_plan):
    """The plan as JSON-able data (for the stored results)."""
    return json.loads(json.dumps(dataclasses.asdict(run_plan), default=files.json_default))
