"""The sampling study's methods, arguments and engine runs (see `applications.sample`)."""

import argparse
import dataclasses
import re

import numpy as np

from applications import cli, engine
from applications.sample.shifts import shifted_sets

METHODS = ("adam", "sgd", "deep-ensemble", "clsgd", "csghmc", "psgld")
LABELS = {
    "adam": "Adam (one model)",
    "sgd": "SGD (one model)",
    "deep-ensemble": "deep ensemble (Adam)",
    "clsgd": "cyclical LSGD (cSGLD)",
    "csghmc": "cyclical LSGHMC (cSGHMC)",
    "psgld": "pSGLD (LRMSprop)",
}

#: Learning rates of the methods (chosen beforehand, not tuned on the test split).
ADAM_LR = 1e-3
SGD_LR = 0.05
CLSGD_LR = 0.1  # the start of every cosine cycle
#: cSGHMC: LSGHMC's momentum (friction 1 - momentum), and its lr fixed by a rule, not tuned:
#: the same effective step lr / (1 - momentum) as cyclical LSGD's, CLSGD_LR (both drift by
#: lr / (1 - momentum) times the gradient; docs/guide/sghmc.md), so 0.1 * (1 - 0.9) = 0.01.
CSGHMC_MOMENTUM = 0.9
CSGHMC_LR = 0.01  # = CLSGD_LR * (1 - CSGHMC_MOMENTUM), written out (no 0.010000000000000002)
PSGLD_LR = 1e-3
PSGLD_RHO = 0.99  # docs/guide/posterior_sampling.md: rho close to 1 for sampling
PSGLD_SAMPLES = 10  # after a burn-in of half the epochs
EXPLORATION_FRACTION = 0.8


DEFAULTS = {
    "model": "mlp-3",
    "image_size": 8,
    "augment": "none",
    "batch_size": 32,
    "seeds": (0, 1, 2),
    "epochs": 100,
    "ensemble_size": 5,
    "cycles": 4,
    "samples_per_cycle": 3,
    "verbose": 0,
}

#: What `--quick` changes (explicitly given flags still win).
QUICK = {
    "seeds": (0,),
    "epochs": 4,
    "ensemble_size": 2,
    "cycles": 2,
    "samples_per_cycle": 1,
    "train_take": 256,
    "test_take": 128,
}

COLUMNS = (
    "method", "seed", "weights", "epochs", "accuracy", "nll", "ece", "brier", "entropy_test",
    "mi_test", "accuracy_rotated", "entropy_rotated", "mi_rotated", "accuracy_noisy",
    "entropy_noisy", "mi_noisy", "seconds",
)  # fmt: skip


def method_name(value):
    if value not in METHODS:
        raise argparse.ArgumentTypeError(
            f"unknown method {value!r}; expected names from: {', '.join(METHODS)}"
        )
    return value


ensemble_size = cli.number(int, "an integer >= 2", lambda n: n >= 2)


def build_parser(defaults=DEFAULTS):
    parser = argparse.ArgumentParser(
        prog="python -m applications.sample",
        description="Single models, a deep ensemble of fully trained members and Langevin "
        "posterior ensembles (cyclical LSGD, cyclical LSGHMC, pSGLD), each with its stated budget "
        "of epochs: accuracy, NLL, ECE, Brier on the test split and predictive entropy on "
        "shifted copies of it.",
        formatter_class=cli.HelpFormatter,
    )
    _add_method_arguments(parser, defaults)
    _add_posterior_arguments(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test settings: "
        + ", ".join(
            f"--{key.replace('_', '-')} {','.join(map(str, value)) if key == 'seeds' else value}"
            for key, value in QUICK.items()
        )
        + " (flags given explicitly still apply)",
    )
    cli.add_model_data_arguments(parser, defaults)
    cli.add_execution_arguments(parser, defaults)
    cli.add_distribution_arguments(parser)
    parser.add_argument(
        "--output", default=None, help="output directory (default: runs/sample-<model>-<dataset>)"
    )
    return parser


def _add_method_arguments(parser, defaults):
    """The methods, their seeds and budgets: epochs, ensemble size, cycles and samples."""
    parser.add_argument(
        "--methods",
        action=cli.ListAction,
        item=method_name,
        default=list(METHODS),
        help=f"methods, comma or space separated, among {', '.join(METHODS)} (default: all)",
    )
    cli.add_seeds_argument(parser, defaults["seeds"])
    parser.add_argument(
        "--epochs",
        type=cli.positive_int,
        default=defaults["epochs"],
        help="the budget of every method, in epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--ensemble-size",
        type=ensemble_size,
        default=defaults["ensemble_size"],
        help="M, the members of the deep ensemble, each trained --epochs epochs like the single "
        "models (budget M x epochs) (default: %(default)s)",
    )
    parser.add_argument(
        "--cycles",
        type=cli.positive_int,
        default=defaults["cycles"],
        help="cycles of cyclical LSGD and cyclical LSGHMC (default: %(default)s)",
    )
    parser.add_argument(
        "--samples-per-cycle",
        type=cli.positive_int,
        default=defaults["samples_per_cycle"],
        help="samples of cyclical LSGD and LSGHMC per cycle, after its last epochs "
        "(default: %(default)s)",
    )


def _add_posterior_arguments(parser):
    """The sampled posterior: the prior's scale and the temperature."""
    parser.add_argument(
        "--prior-std",
        type=cli.positive_float,
        default=0.5,
        help="standard deviation s of the Gaussian prior on the kernels: an L2 regulariser "
        "1 / (2 N s^2) (default: %(default)s)",
    )
    parser.add_argument(
        "--temperature",
        type=cli.positive_float,
        default=1.0,
        help="T of the sampled posterior p(theta | D)^(1/T), passed to posterior_sigma: 1 is "
        "the Bayesian posterior, T < 1 a cold one; the Langevin methods only (the single "
        "models and the ensemble are MAP estimates, T -> 0) (default: %(default)s)",
    )


def parse_args(argv=None):
    """Parses and checks the arguments; `--quick` replaces the defaults by `QUICK`."""
    parser, args = cli.parse(build_parser, DEFAULTS, QUICK, argv)
    if not re.fullmatch(r"mlp-\d+", args.model):
        parser.error(
            "--model: the prior is an L2 regulariser on the kernels (the model option l2), "
            f"which only the mlp-<depth> models take; got {args.model!r}"
        )
    if any(key == "l2" for key, _ in args.model_options):
        parser.error("--model-option l2: the prior is set by --prior-std")
    if {"clsgd", "csghmc"} & set(args.methods) and args.epochs % args.cycles:
        parser.error(
            f"--cycles: --epochs {args.epochs} is not a multiple of --cycles {args.cycles} "
            "(cycles of a whole number of epochs)"
        )
    if "psgld" in args.methods and args.epochs < 2:
        parser.error("--epochs: psgld needs at least 2 (a burn-in of half the epochs)")
    return parser, args


# ----------------------------------------------------------------------------- the runs


@dataclasses.dataclass(frozen=True)
class Run:
    """One engine run of a method: its directory name, config and `PosteriorSampler` options."""

    name: str
    config: engine.RunConfig
    sampler: dict


def member_seed(seed, member):
    """The seed of member `member` of the deep ensemble of `seed` (its own initial weights)."""
    return int(np.random.SeedSequence((seed, member)).generate_state(1)[0] % 2**31)


def prior_l2(num_examples, prior_std):
    """The L2 coefficient of a Gaussian prior N(0, prior_std^2) for a loss averaged over N."""
    return 1.0 / (2.0 * num_examples * prior_std**2)


def plan(method, args, seed, data):
    """The engine runs of `method` for `seed`; `data` gives N and the steps per epoch."""
    import keras_langevin as kl

    base = engine.RunConfig.from_args(
        args,
        seed=seed,
        model_options=(*map(tuple, args.model_options), ("l2", data.l2)),
        epsilon="keras",
    )
    epochs = args.epochs
    sigma = kl.sampling.posterior_sigma(data.train_size, args.temperature)
    if method in ("adam", "sgd"):
        lr = ADAM_LR if method == "adam" else SGD_LR
        config = base.replace(optimizer=method, lr=lr, lr_schedule="constant", epochs=epochs)
        return [Run(f"{method}-seed{seed}", config, {"epochs": [epochs]})]
    if method == "deep-ensemble":
        member_epochs = epochs  # fully trained, like the single models
        return [
            Run(
                f"deep-ensemble-seed{seed}-member{j}",
                base.replace(
                    optimizer="adam",
                    lr=ADAM_LR,
                    lr_schedule="constant",
                    epochs=member_epochs,
                    seed=member_seed(seed, j),
                ),
                {"epochs": [member_epochs]},
            )
            for j in range(args.ensemble_size)
        ]
    if method in ("clsgd", "csghmc"):
        return [_cyclical_run(method, base, args, seed, data)]
    if method == "psgld":
        burn_in = epochs // 2
        config = base.replace(
            optimizer="lrmsprop",
            lr=PSGLD_LR,
            lr_schedule="constant",
            sigma=sigma,
            sigma_schedule="constant",
            optimizer_options=(("rho", PSGLD_RHO),),
            epochs=epochs,
        )
        every = max(1, (epochs - burn_in) // PSGLD_SAMPLES)
        sampler = {"burn_in_epochs": burn_in, "every_epochs": every}
        return [Run(f"psgld-seed{seed}", config, sampler)]
    raise ValueError(f"unknown method {method!r}")


def _cyclical_run(method, base, args, seed, data):
    """cSGLD (LSGD) or cSGHMC (LSGHMC, the noise in the momentum): a cosine learning rate and
    the posterior sigma in the last 1 - EXPLORATION_FRACTION of every cycle, samples after the
    last `--samples-per-cycle` epochs of each cycle."""
    import keras_langevin as kl

    epochs, cycle_epochs = args.epochs, args.epochs // args.cycles
    options = (("exploration_fraction", EXPLORATION_FRACTION),)
    if method == "csghmc":
        optimizer, lr, momentum = "lsghmc", CSGHMC_LR, CSGHMC_MOMENTUM
        options += (("momentum", momentum),)
    else:
        optimizer, lr, momentum = "lsgd", CLSGD_LR, 0.0
    sigma = kl.sampling.posterior_sigma(data.train_size, args.temperature, momentum=momentum)
    config = base.replace(
        optimizer=optimizer,
        lr=lr,
        lr_schedule="cyclical-cosine",
        sigma=sigma,
        sigma_schedule="cyclical",
        decay_epochs=cycle_epochs,
        optimizer_options=options,
        epochs=epochs,
    )
    schedule = kl.sampling.CyclicalSigma(
        sigma, cycle_epochs * data.steps_per_epoch, EXPLORATION_FRACTION
    )
    sampled = schedule.sampling_epochs(data.steps_per_epoch, epochs, args.samples_per_cycle)
    return Run(f"{method}-seed{seed}", config, {"epochs": sampled})


@dataclasses.dataclass(frozen=True)
class Data:
    """What the runs and the evaluation need from the dataset."""

    train_size: int
    steps_per_epoch: int
    l2: float
    splits: dict  # split name -> (images, labels)


def load_data(args):
    """The test split as arrays, its shifted copies, N and the steps per epoch."""
    config = engine.RunConfig.from_args(args)
    dataset = engine.load_data(config)
    images, labels = [], []
    for x, y in dataset.test:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    images, labels = np.concatenate(images), np.concatenate(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    return Data(
        train_size=dataset.train_size,
        steps_per_epoch=dataset.steps_per_epoch,
        l2=prior_l2(dataset.train_size, args.prior_std),
        splits={name: (x, labels) for name, x in shifted_sets(images).items()},
    )


def check_plans(parser, args, data):
    """Every run's config, and the model and optimizer of each, built before anything is
    written (bad flags: exit 2)."""
    runs = []
    for method in args.methods:
        try:
            runs += plan(method, args, args.seeds[0], data)
        except ValueError as error:
            flag = "--samples-per-cycle" if "samples_per_cycle" in str(error) else "--epochs"
            parser.error(f"{flag}: {method}: {error}")
    try:
        engine.check_configs([run.config for run in runs])
    except engine.UsageError as error:
        parser.error(str(error))
