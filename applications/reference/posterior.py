"""The reference posterior of a problem: NUTS draws reduced to a compact, resumable file.

`reference(problem, ...)` runs NUTS (once: a finished reference with the same settings is read
back) and keeps, in `<output>/reference-<problem>.npz` and `.json`:

- the posterior predictive on the test split and its shifted copies (`probabilities_<split>`),
- per weight: posterior mean, variance, R-hat, bulk and tail ESS, the prior-only mask,
- per test example: R-hat and bulk ESS of the probability of its true label (function space,
  where the network's weight-space symmetries do not matter), and the predictive of every
  chain on its own, whose largest total-variation distance to the pooled predictive says how
  far the chains agree,
- the settings, numpyro's counts (divergences, tree-depth hits, gradient evaluations) and the
  run time.

The draws themselves are not kept (megabytes); everything the comparison needs is above.
"""

import json
import os

import numpy as np

from applications import files
from applications.reference import nuts, problems

#: Initial points: near zero for the log-concave problem, prior draws for the network (so that
#: the chains start in different regions of a multimodal posterior).
SOFTMAX_INIT_STD = 0.01


def initial_points(problem, num_chains, prior_std, seed):
    rng = np.random.default_rng(seed)
    std = SOFTMAX_INIT_STD if problem == "softmax" else prior_std
    return rng.normal(0.0, std, size=(num_chains, problems.num_params(problem)))


def _true_label_probabilities(draws, x, y, problem, chunk=250):
    """`(chains, S, n)`: the probability of each example's label under each draw."""
    import jax
    import jax.numpy as jnp

    x, y = jnp.asarray(x), jnp.asarray(y)

    @jax.jit
    def probs(thetas):
        logits = jax.vmap(lambda t: problems.logits_jax(t, x, problem))(thetas)
        p = jax.nn.softmax(logits, axis=-1)
        return jnp.take_along_axis(p, y[None, :, None], axis=-1)[..., 0]

    flat = draws.reshape(-1, draws.shape[-1])
    out = np.concatenate(
        [np.asarray(probs(jnp.asarray(flat[i : i + chunk]))) for i in range(0, len(flat), chunk)]
    )
    return out.reshape(draws.shape[0], draws.shape[1], -1)


def _tv(p, q):
    return float(np.mean(0.5 * np.abs(p - q).sum(axis=-1)))


def summarise_run(result, draws, splits, data, problem, prior_std):
    """The arrays and the JSON summary of one NUTS run."""
    per_weight = nuts.diagnostics(draws)
    flat = draws.reshape(-1, draws.shape[-1])
    arrays = {
        "mean": flat.mean(axis=0),
        "variance": flat.var(axis=0, ddof=1),
        "prior_only": problems.prior_only_mask(problem, data),
        **per_weight,
    }
    for split, x in splits.items():
        arrays[f"probabilities_{split}"] = problems.predictive_probabilities(flat, x, problem)
    true_label = _true_label_probabilities(draws, data.x_test, data.y_test, problem)
    function = nuts.diagnostics(true_label)
    arrays["rhat_function"], arrays["ess_function"] = function["rhat"], function["ess_bulk"]
    chain_tv = []
    for chain in draws:
        p = problems.predictive_probabilities(chain, data.x_test, problem)
        arrays.setdefault("probabilities_test_per_chain", []).append(p)
        chain_tv.append(_tv(p, arrays["probabilities_test"]))
    arrays["probabilities_test_per_chain"] = np.stack(arrays["probabilities_test_per_chain"])
    mask = arrays["prior_only"]
    summary = {
        "weights": int(draws.shape[-1]),
        "draws": int(flat.shape[0]),
        "divergences": result.divergences,
        "tree_depth_hits": result.tree_depth_hits,
        "mean_leapfrog_steps": result.mean_steps,
        "gradient_evaluations": result.gradient_evaluations,
        "step_sizes": result.step_sizes,
        "seconds": round(result.seconds, 1),
        "rhat": nuts.summarise(per_weight["rhat"]),
        "ess_bulk": nuts.summarise(per_weight["ess_bulk"]),
        "ess_tail": nuts.summarise(per_weight["ess_tail"]),
        "rhat_above_1.01": int(np.sum(per_weight["rhat"] > 1.01)),
        "rhat_function": nuts.summarise(function["rhat"]),
        "ess_function": nuts.summarise(function["ess_bulk"]),
        "chain_tv_to_pooled": chain_tv,
        "prior_only_weights": int(mask.sum()),
        "prior_only_variance_over_prior": nuts.summarise(arrays["variance"][mask] / prior_std**2),
    }
    return arrays, summary


def reference(problem, data, splits, prior_std, settings, output, log=print):
    """The reference of `problem` in `output`: computed once, then read back.

    Returns `(arrays, summary)`. A file with other settings is an error, never overwritten.
    """
    stem = os.path.join(output, f"reference-{problem}")
    config = {
        "problem": problem,
        "prior_std": prior_std,
        "train_size": data.train_size,
        "test_size": len(data.y_test),
        "nuts": vars(settings) if hasattr(settings, "__dict__") else settings,
    }
    config = json.loads(json.dumps(config, default=files.json_default))
    if os.path.exists(stem + ".json") and os.path.exists(stem + ".npz"):
        with open(stem + ".json") as handle:
            stored = json.load(handle)
        if stored["config"] != config:
            raise ValueError(
                f"{stem}.json holds a reference with other settings; use another --output "
                "or delete it"
            )
        with np.load(stem + ".npz") as loaded:
            return dict(loaded), stored["summary"]
    import jax

    jax.config.update("jax_enable_x64", False)
    log(f"reference {problem}: NUTS {settings} ...")
    init = initial_points(problem, settings.num_chains, prior_std, settings.seed)
    result = nuts.run_nuts(problems.potential_fn(problem, data, prior_std), init, settings)
    arrays, summary = summarise_run(result, result.draws, splits, data, problem, prior_std)
    with files.atomic_path(stem + ".npz", ".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    files.write_json(stem + ".json", {"config": config, "summary": summary})  # commit point
    log(
        f"reference {problem}: {summary['seconds']} s, R-hat max {summary['rhat']['max']:.3f}, "
        f"bulk ESS min {summary['ess_bulk']['min']:.0f}, divergences {summary['divergences']}"
    )
    return arrays, summary
