"""Posterior sampling against point estimates and a deep ensemble: accuracy, calibration, and
uncertainty off the training distribution.

    python -m applications.sample                  # mlp-3 on the 8x8 digits, 3 seeds
    python -m applications.sample --quick          # smoke test, seconds per method
    python -m applications.sample --methods adam,psgld --seeds 5 --epochs 200
    python -m applications.sample --distribute mirrored     # every local GPU (TensorFlow)

Methods (`--methods`), all with the same model, the same prior and the same budget of
`--epochs` epochs:

    adam           one model, Keras's Adam, lr 1e-3 (constant)
    sgd            one model, Keras's SGD, lr 0.05 (constant)
    deep-ensemble  `--ensemble-size` M models trained with adam as above, each from its own
                   initial weights (seed derived from the seed and the member's index) and its
                   own data order, for epochs / M epochs each: the ensemble spends the same
                   budget as one model (M x epochs/M), its predictions are averaged
    clsgd          cyclical SGLD (cSG-MCMC, Zhang et al. 2020): LSGD with
                   `CyclicalCosineDecay(0.1)` and `CyclicalSigma(posterior sigma)` in `--cycles`
                   cycles; no noise in the first 80% of a cycle, samples after the last
                   `--samples-per-cycle` epochs of each cycle
    psgld          pSGLD (Li et al. 2016): LRMSprop with rho 0.99, lr 1e-3 (constant), the
                   posterior sigma; burn-in epochs / 2, then 10 samples evenly spaced

The posterior: the loss is the mean cross-entropy over the N training examples plus an L2
regulariser on every Dense kernel (the mlp's `l2` model option), `lam = 1 / (2 N s^2)` with
s = `--prior-std`: a Gaussian prior N(0, s^2) on the kernels, flat on the biases. The
Langevin methods use `sigma = keras_langevin.sampling.posterior_sigma(N, --temperature)`; the
single models and the deep ensemble minimise the same loss (MAP estimates). The model must
take the `l2` option: the `mlp-<depth>` models. Adam and RMSprop use Keras's epsilon.

Evaluation: the Bayesian model average of each method's weights (one for a single model, M for
the deep ensemble, the samples for the Langevin methods) on the dataset's test split, held out
(only reported, never used to choose anything): accuracy, NLL, ECE (15 bins), Brier;
and, per example, the predictive entropy and the mutual information between label and weights
(0 for one model), on the test split and on two shifted copies of it, built from the test split
with a fixed seed: every image rotated by 45 degrees, and every image plus Gaussian noise of
standard deviation 0.5 (clipped to [0, 1]).

Every training run is a resumable run of the run engine in `runs/<method>-seed<k>/` (members:
`runs/deep-ensemble-seed<k>-member<j>/`), its samples in `samples/` there
(`keras_langevin.sampling.PosteriorSampler`, before the engine's backup). The evaluation of
a method and seed is written to `evaluations/`; a rerun skips what is evaluated and resumes
the rest. Outputs, in `--output`:

    results.csv      per method and seed: the metrics above
    results.md       per method, mean +- std over seeds, the command and its run time
    reliability.png  reliability diagram of each method on the test split, seeds pooled
    entropy.png      histograms of the predictive entropy, test split against the shifts

Several devices or hosts (`--distribute`, as in `applications.train`; see
`applications/distribute.py`): every run trains under the strategy, `--batch-size` is the
global batch. Only the chief (TensorFlow's chief task, JAX's process 0) writes the samples,
their manifests, the evaluations, the results and the figures. The other processes train in
lockstep, write their samples and initial weights to temporary paths that they delete, keep
only the engine's own backup and log (`runs/<run>/<task>/`, for resuming), and evaluate
nothing; whether a method and seed was evaluated before is the chief's decision.
"""

import argparse
import dataclasses
import math
import os
import re
import shlex
import sys
import time

import numpy as np

from applications import cli, distribute, engine, files

METHODS = ("adam", "sgd", "deep-ensemble", "clsgd", "psgld")
LABELS = {
    "adam": "Adam (one model)",
    "sgd": "SGD (one model)",
    "deep-ensemble": "deep ensemble (Adam)",
    "clsgd": "cyclical LSGD (cSGLD)",
    "psgld": "pSGLD (LRMSprop)",
}

#: Learning rates of the methods (chosen beforehand, not tuned on the test split).
ADAM_LR = 1e-3
SGD_LR = 0.05
CLSGD_LR = 0.1  # the start of every cosine cycle
PSGLD_LR = 1e-3
PSGLD_RHO = 0.99  # docs/posterior_sampling.md: rho close to 1 for sampling
PSGLD_SAMPLES = 10  # after a burn-in of half the epochs
EXPLORATION_FRACTION = 0.8

#: The shifted copies of the test split (fixed seed: the same images for every run).
ROTATION_DEGREES = 45.0
NOISE_STD = 0.5
SHIFT_SEED = 20240
SPLITS = ("test", "rotated", "noisy")

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
        description="Single models, a deep ensemble and Langevin posterior ensembles (cyclical "
        "LSGD, pSGLD) with the same budget of epochs: accuracy, NLL, ECE, Brier on the test "
        "split and predictive entropy on shifted copies of it.",
        formatter_class=cli.HelpFormatter,
    )
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
        help="M, the members of the deep ensemble, epochs / M epochs each (default: %(default)s)",
    )
    parser.add_argument(
        "--cycles",
        type=cli.positive_int,
        default=defaults["cycles"],
        help="cycles of cyclical LSGD (default: %(default)s)",
    )
    parser.add_argument(
        "--samples-per-cycle",
        type=cli.positive_int,
        default=defaults["samples_per_cycle"],
        help="samples of cyclical LSGD per cycle, after its last epochs (default: %(default)s)",
    )
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
        help="T of the sampled posterior p(theta | D)^(1/T) (default: %(default)s)",
    )
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
    if "deep-ensemble" in args.methods and args.epochs % args.ensemble_size:
        parser.error(
            f"--ensemble-size: --epochs {args.epochs} is not a multiple of --ensemble-size "
            f"{args.ensemble_size} (each member trains epochs / M epochs)"
        )
    if "clsgd" in args.methods and args.epochs % args.cycles:
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
        member_epochs = epochs // args.ensemble_size
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
    if method == "clsgd":
        cycle_epochs = epochs // args.cycles
        config = base.replace(
            optimizer="lsgd",
            lr=CLSGD_LR,
            lr_schedule="cyclical-cosine",
            sigma=sigma,
            sigma_schedule="cyclical",
            decay_epochs=cycle_epochs,
            optimizer_options=(("exploration_fraction", EXPLORATION_FRACTION),),
            epochs=epochs,
        )
        schedule = kl.sampling.CyclicalSigma(
            sigma, cycle_epochs * data.steps_per_epoch, EXPLORATION_FRACTION
        )
        sampled = schedule.sampling_epochs(data.steps_per_epoch, epochs, args.samples_per_cycle)
        return [Run(f"clsgd-seed{seed}", config, {"epochs": sampled})]
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


def shifted_sets(images):
    """`{"test": images, "rotated": ..., "noisy": ...}`, images `(n, H, W, C)` in [0, 1]."""
    from scipy import ndimage

    rotated = ndimage.rotate(
        images, ROTATION_DEGREES, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0
    )
    rng = np.random.default_rng(SHIFT_SEED)
    noisy = images + rng.normal(0.0, NOISE_STD, size=images.shape)
    return {
        "test": images,
        "rotated": np.clip(rotated, 0.0, 1.0).astype(images.dtype),
        "noisy": np.clip(noisy, 0.0, 1.0).astype(images.dtype),
    }


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


# ----------------------------------------------------------------------------- evaluation


def evaluation_settings(runs, data):
    return {
        "runs": [
            {"name": run.name, "settings": run.config.settings(), "sampler": run.sampler}
            for run in runs
        ],
        "train_size": data.train_size,
        "shifts": {"rotation_degrees": ROTATION_DEGREES, "noise_std": NOISE_STD},
        "shift_seed": SHIFT_SEED,
    }


def evaluate(runs, weights, data):
    """The Bayesian model average of `weights` on every split: metrics and per-example arrays."""
    import keras

    from keras_langevin.sampling import PosteriorEnsemble, calibration_report

    config = runs[0].config
    keras.backend.clear_session()
    with engine.precision(config.mixed_precision):
        model = engine.build_model(config, engine.load_data(config))
    ensemble = PosteriorEnsemble(model, weights)
    metrics, arrays = {}, {}
    for split, (x, y) in data.splits.items():
        prediction = ensemble.predict_with_uncertainty(x, batch_size=512)
        probabilities = np.asarray(prediction.probabilities, dtype="float64")
        report = calibration_report(y, probabilities)
        suffix = "" if split == "test" else f"_{split}"
        metrics[f"accuracy{suffix}"] = report["accuracy"]
        if split == "test":
            metrics.update(nll=report["nll"], ece=report["ece"], brier=report["brier"])
            arrays["probabilities_test"] = probabilities
            arrays["labels_test"] = y
        metrics[f"entropy_{split}"] = float(np.mean(prediction.predictive_entropy))
        metrics[f"mi_{split}"] = float(np.mean(prediction.mutual_information))
        arrays[f"entropy_{split}"] = prediction.predictive_entropy
        arrays[f"mi_{split}"] = prediction.mutual_information
    keras.backend.clear_session()
    return metrics, arrays


def save_arrays(path, arrays):
    with files.atomic_path(path, ".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


#: What the chief finds of a method's evaluation on disk (agreed on by every process).
NOT_EVALUATED, EVALUATED, OTHER_SETTINGS = 0, 1, 2


def evaluation_state(stem, settings, distribution):
    """`(state, evaluation)`: whether `stem` holds the evaluation of `settings`, as the chief
    sees it, agreed on by every process (a collective: they all train, or all skip, or all
    stop); the evaluation read by the chief (None elsewhere)."""
    import json

    state, evaluation = NOT_EVALUATED, None
    if distribution.is_chief and os.path.exists(stem + ".json") and os.path.exists(stem + ".npz"):
        with open(stem + ".json") as handle:
            evaluation = json.load(handle)
        state = EVALUATED if evaluation["settings"] == settings else OTHER_SETTINGS
    return max(distribution.agree(state)), evaluation  # the others say NOT_EVALUATED


def train_run(parser, args, run, paths, distribution):
    """Trains (or resumes) `run` with its `PosteriorSampler`; returns its samples' paths.

    A process other than the chief trains in lockstep with it, but its samples and initial
    weights go to temporary paths, deleted afterwards (it returns no paths), and the engine
    keeps its backup and log in `runs/<run>/<task>/`.
    """
    from keras_langevin.sampling import PosteriorSampler

    run_dir = os.path.join(paths["runs"], run.name)
    initial = os.path.join(paths["initial_weights"], f"seed{run.config.seed}.weights.h5")
    samples = os.path.join(run_dir, "samples")
    with (
        distribution.private_path(initial) as initial,
        distribution.private_path(samples) as samples,
    ):
        sampler = PosteriorSampler(samples, **run.sampler)
        try:
            engine.run(
                run.config,
                run_dir,
                initial_weights=engine.save_initial_weights(run.config, initial),
                verbose=args.verbose,
                tensorboard=False,
                callbacks=[sampler],
                distribution=distribution,
            )
        except engine.UsageError as error:
            parser.error(str(error))
        return [sample.path for sample in sampler.samples] if distribution.is_chief else []


def train_and_evaluate(parser, args, method, seed, data, paths, distribution=distribute.OFF):
    """Trains (or resumes) the runs of `method` for `seed` and evaluates their average; skips
    both when the evaluation is already on disk. Returns `(row, arrays)`; `(None, None)` on a
    process other than the chief, which trains but neither evaluates nor writes."""
    import json

    runs = plan(method, args, seed, data)
    stem = os.path.join(paths["evaluations"], f"{method}-seed{seed}")
    settings = json.loads(json.dumps(evaluation_settings(runs, data), default=files.json_default))
    state, done = evaluation_state(stem, settings, distribution)
    if state == OTHER_SETTINGS:
        parser.error(
            f"{stem}.json holds the evaluation of a run with other settings. Resume it with "
            "the same arguments, or use another --output (or delete that directory)."
        )
    if state == EVALUATED:
        print(f"seed {seed} {method:14s} evaluated before: skipped", flush=True)
        if done is None:
            return None, None
        with np.load(stem + ".npz") as loaded:
            arrays = dict(loaded)
        return done["row"], arrays
    started = time.time()
    weights = []
    for run in runs:
        weights += train_run(parser, args, run, paths, distribution)
    if not distribution.is_chief:
        print(f"seed {seed} {method:14s} trained; the chief evaluates", flush=True)
        return None, None
    metrics, arrays = evaluate(runs, weights, data)
    row = {
        "method": method,
        "seed": seed,
        "weights": len(weights),
        "epochs": sum(run.config.epochs for run in runs),
        **metrics,
        "seconds": round(time.time() - started, 1),
    }
    save_arrays(stem + ".npz", arrays)
    files.write_json(stem + ".json", {"settings": settings, "row": row})  # the commit point
    print(
        f"seed {seed} {method:14s} accuracy {row['accuracy']:.4f} nll {row['nll']:.4f} ece "
        f"{row['ece']:.4f} | entropy test {row['entropy_test']:.3f} rotated "
        f"{row['entropy_rotated']:.3f} noisy {row['entropy_noisy']:.3f} "
        f"({len(weights)} weights, {row['seconds']:.1f} s)",
        flush=True,
    )
    return row, arrays


# ----------------------------------------------------------------------------- reporting


def _cells(rows, key, digits):
    return engine.format_mean_std([row[key] for row in rows], digits=digits)


def markdown_table(rows, args, data, command, seconds, distribution=distribute.OFF):
    by_method = {m: [r for r in rows if r["method"] == m] for m in args.methods}
    seeds = ", ".join(map(str, args.seeds))
    sigma = math.sqrt(2.0 * args.temperature / data.train_size)
    lines = [
        f"# Posterior sampling: {args.model} on {args.dataset}",
        "",
        f"Command: `{command}`  ",
        (
            f"Run time of this invocation: {seconds:.0f} s ({seconds / 60:.1f} min); runs "
            "evaluated by an earlier invocation are skipped and not counted."
        ),
        "",
        (
            f"{args.model}, {args.epochs} epochs per method, batch size {args.batch_size}, seeds "
            f"{seeds}; N = {data.train_size} training examples. Prior N(0, "
            f"{args.prior_std:g}²) on the kernels: L2 {data.l2:.3g}. Posterior temperature "
            f"{args.temperature:g}, sigma = sqrt(2T/N) = {sigma:.4g}. Deep ensemble: "
            f"{args.ensemble_size} members x {args.epochs // args.ensemble_size} epochs. "
            f"Cyclical LSGD: {args.cycles} cycles, {args.samples_per_cycle} sample(s) per cycle. "
            f"pSGLD: burn-in {args.epochs // 2} epochs. Mean ± standard deviation over seeds "
            "(n - 1); metrics of the averaged prediction on the held-out test split; entropy "
            "and mutual information (MI) in nats, averaged over examples."
        ),
        "",
        *_distribution_lines(distribution),
        "| method | weights | accuracy | NLL | ECE | Brier | entropy | MI |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, method_rows in by_method.items():
        if not method_rows:
            continue
        cells = [_cells(method_rows, key, 4) for key in ("accuracy", "nll", "ece", "brier")]
        cells += [_cells(method_rows, key, 3) for key in ("entropy_test", "mi_test")]
        lines.append(
            f"| {LABELS[method]} | {method_rows[0]['weights']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        (
            f"Shifted test sets: every test image rotated by {ROTATION_DEGREES:g}°, and every "
            f"test image plus Gaussian noise of standard deviation {NOISE_STD:g} (clipped to "
            "[0, 1])."
        ),
        "",
        (
            "| method | entropy test | accuracy rotated | entropy rotated | MI rotated | "
            "accuracy noisy | entropy noisy | MI noisy |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, method_rows in by_method.items():
        if not method_rows:
            continue
        cells = [_cells(method_rows, "entropy_test", 3)]
        for split in ("rotated", "noisy"):
            cells += [
                _cells(method_rows, f"accuracy_{split}", 4),
                _cells(method_rows, f"entropy_{split}", 3),
                _cells(method_rows, f"mi_{split}", 3),
            ]
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _distribution_lines(distribution):
    if distribution.mode == "off":
        return []
    return [
        (
            f"Trained with --distribute {distribution.mode}: {distribution.num_replicas} "
            f"replicas in {distribution.num_processes} process(es); the batch size is the "
            "global batch."
        ),
        "",
    ]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(path, arrays, methods, title):
    from keras_langevin.sampling import (
        expected_calibration_error,
        plot_reliability_diagram,
        reliability_diagram,
    )

    plt = _pyplot()
    figure, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.6), squeeze=False)
    for ax, method in zip(axes[0], methods):
        labels = np.concatenate([a["labels_test"] for a in arrays[method]])
        probabilities = np.concatenate([a["probabilities_test"] for a in arrays[method]])
        plot_reliability_diagram(reliability_diagram(labels, probabilities), ax=ax)
        ece = expected_calibration_error(labels, probabilities)
        ax.set_title(f"{LABELS[method]}\nECE {ece:.3f}", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    files.save_figure_atomic(figure, path)
    plt.close(figure)


def plot_entropy(path, arrays, methods, num_classes, title):
    plt = _pyplot()
    figure, axes = plt.subplots(
        1, len(methods), figsize=(3.2 * len(methods), 3.4), squeeze=False, sharey=True
    )
    bins = np.linspace(0.0, math.log(num_classes), 31)
    names = {
        "test": "test",
        "rotated": f"rotated {ROTATION_DEGREES:g}°",
        "noisy": f"noise σ={NOISE_STD:g}",
    }
    for ax, method in zip(axes[0], methods):
        for split, color in zip(SPLITS, ("C0", "C1", "C3")):
            values = np.concatenate([a[f"entropy_{split}"] for a in arrays[method]])
            ax.hist(
                values,
                bins=bins,
                histtype="step",
                density=True,
                linewidth=1.5,
                color=color,
                label=f"{names[split]} ({values.mean():.2f})",
            )
        ax.set_title(LABELS[method], fontsize=9)
        ax.set_xlabel("predictive entropy (nats)")
        ax.legend(fontsize=7, title="mean", title_fontsize=7)
    axes[0][0].set_ylabel("density")
    figure.suptitle(title)
    figure.tight_layout()
    files.save_figure_atomic(figure, path)
    plt.close(figure)


# ----------------------------------------------------------------------------- main


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, args = parse_args(argv)
    distribution = cli.setup_distribution(parser, args)  # before TensorFlow or JAX run
    output = args.output or os.path.join("runs", f"sample-{args.model}-{args.dataset}")
    paths = {
        "csv": os.path.join(output, "results.csv"),
        "table": os.path.join(output, "results.md"),
        "reliability": os.path.join(output, "reliability.png"),
        "entropy": os.path.join(output, "entropy.png"),
        "evaluations": os.path.join(output, "evaluations"),
        "initial_weights": os.path.join(output, "initial_weights"),
        "runs": os.path.join(output, "runs"),
    }
    started = time.time()
    from applications.data import DatasetNotAvailableError

    try:
        data = load_data(args)
    except (ValueError, DatasetNotAvailableError) as error:
        parser.error(str(error))
    check_plans(parser, args, data)
    rows, arrays = [], {method: [] for method in args.methods}
    for seed in args.seeds:
        for method in args.methods:
            row, method_arrays = train_and_evaluate(
                parser, args, method, seed, data, paths, distribution
            )
            if row is None:  # not the chief: it writes nothing
                continue
            rows.append(row)
            arrays[method].append(method_arrays)
            files.write_csv(paths["csv"], COLUMNS, rows)  # partial results survive a stop
    seconds = time.time() - started
    if not distribution.is_chief:
        print(
            f"{distribution.task}: done in {seconds:.1f} s; the chief writes the results to {output}"
        )
        return rows
    command = " ".join(["python -m applications.sample", *map(shlex.quote, argv)])
    table = markdown_table(rows, args, data, command, seconds, distribution)
    files.write_text(paths["table"], table)
    title = f"{args.model} on {args.dataset}, seeds pooled"
    plot_reliability(paths["reliability"], arrays, args.methods, title + ": test split")
    num_classes = arrays[args.methods[0]][0]["probabilities_test"].shape[1]
    plot_entropy(paths["entropy"], arrays, args.methods, num_classes, title)
    sys.stdout.write("\n" + table + "\n")
    print(f"{len(rows)} evaluations in {seconds:.1f} s")
    print("Outputs:")
    for key, path in paths.items():
        print(f"  {key:16s} {path}")
    return rows


if __name__ == "__main__":
    main()
