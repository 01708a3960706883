"""NUTS (numpyro) on a potential `U(theta)`, and ArviZ's R-hat and effective sample size."""

import dataclasses
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class NutsSettings:
    """The settings of one NUTS run (numpyro's names)."""

    num_chains: int = 4
    num_warmup: int = 1000
    num_samples: int = 1000
    max_tree_depth: int = 10
    target_accept_prob: float = 0.8
    dense_mass: bool = False
    seed: int = 0

    def __post_init__(self):
        for name in ("num_chains", "num_warmup", "num_samples", "max_tree_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NutsSettings: {name} must be an integer >= 1, got {value!r}")
        if not 0.0 < self.target_accept_prob < 1.0:
            raise ValueError(
                "NutsSettings: target_accept_prob must be in (0, 1), got "
                f"{self.target_accept_prob!r}"
            )


@dataclasses.dataclass
class NutsResult:
    """Draws `(chains, samples, P)` and what numpyro reports of each draw."""

    draws: np.ndarray
    divergences: int
    tree_depth_hits: int  # draws whose trajectory reached `max_tree_depth`
    mean_steps: float  # leapfrog steps (gradient evaluations) per draw
    gradient_evaluations: int  # warm-up and sampling together
    step_sizes: list
    seconds: float


def run_nuts(potential, init, settings):
    """NUTS on `potential` (a JAX function of a flat vector) from `init` `(chains, P)`.

    The chains run one after the other (numpyro's "sequential" method), each with its own
    warm-up (step size and diagonal or dense mass matrix adaptation).
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    init = np.asarray(init, dtype="float32")
    if init.shape[0] != settings.num_chains:
        raise ValueError(
            f"run_nuts: init has {init.shape[0]} rows for {settings.num_chains} chains"
        )
    kernel = NUTS(
        potential_fn=potential,
        max_tree_depth=settings.max_tree_depth,
        target_accept_prob=settings.target_accept_prob,
        dense_mass=settings.dense_mass,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=settings.num_warmup,
        num_samples=settings.num_samples,
        num_chains=settings.num_chains,
        chain_method="sequential",
        progress_bar=False,
    )
    started = time.time()
    mcmc.run(
        jax.random.PRNGKey(settings.seed),
        init_params=jnp.asarray(init if settings.num_chains > 1 else init[0]),
        extra_fields=("diverging", "num_steps"),
    )
    draws = np.asarray(mcmc.get_samples(group_by_chain=True), dtype="float64")
    extra = mcmc.get_extra_fields(group_by_chain=True)
    num_steps = np.asarray(extra["num_steps"])
    step_sizes = _step_sizes(mcmc, settings.num_chains)
    return NutsResult(
        draws=draws.reshape(settings.num_chains, settings.num_samples, -1),
        divergences=int(np.sum(extra["diverging"])),
        tree_depth_hits=int(np.sum(num_steps >= 2**settings.max_tree_depth - 1)),
        mean_steps=float(np.mean(num_steps)),
        gradient_evaluations=_gradient_evaluations(mcmc, num_steps, settings),
        step_sizes=step_sizes,
        seconds=time.time() - started,
    )


def _step_sizes(mcmc, num_chains):
    state = mcmc.last_state
    return [float(s) for s in np.ravel(np.asarray(state.adapt_state.step_size))][:num_chains]


def _gradient_evaluations(mcmc, num_steps, settings):
    """Gradient evaluations of sampling (exact) plus warm-up (estimated as the same mean
    per draw: numpyro keeps no record of the warm-up trajectories)."""
    sampling = int(np.sum(num_steps))
    per_draw = sampling / max(1, num_steps.size)
    return int(sampling + per_draw * settings.num_warmup * settings.num_chains)


def diagnostics(draws):
    """ArviZ's rank-normalised split R-hat, bulk and tail ESS of `draws` `(chains, S, ...)`,
    per coordinate (arrays shaped like one draw)."""
    import arviz as az

    data = az.convert_to_dataset({"x": np.asarray(draws)})
    return {
        "rhat": np.asarray(az.rhat(data)["x"]),
        "ess_bulk": np.asarray(az.ess(data, method="bulk")["x"]),
        "ess_tail": np.asarray(az.ess(data, method="tail")["x"]),
    }


def summarise(values):
    """min / median / max of an array (NaNs dropped), as floats."""
    values = np.asarray(values, dtype="float64").ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"min": None, "median": None, "max": None}
    return {
        "min": float(values.min()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }
