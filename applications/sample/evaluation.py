"""Training and evaluating one method and seed, resumably (see `applications.sample`)."""

import os
import time
import warnings

import numpy as np

from applications import distribute, engine, files
from applications.sample.plan import plan
from applications.sample.shifts import NOISE_STD, ROTATION_DEGREES, SHIFT_SEED


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
            with warnings.catch_warnings():
                # The single models and the ensemble keep their last weights with it, knowingly.
                warnings.filterwarnings(
                    "ignore", "PosteriorSampler: the optimizer .* adds no noise"
                )
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
