"""`applications.reference`: the NUTS reference against an exact posterior, the problems'
posterior against the Keras loss the methods train on, the metrics, and `--quick` end to end."""

import csv
import json
import math

import numpy as np
import pytest

from applications.reference import main as reference_main
from applications.reference import methods, metrics, nuts, problems

# ----------------------------------------------------------------------------- NUTS, exact


def test_nuts_matches_the_exact_posterior_of_bayesian_linear_regression():
    """y = X w + e, e ~ N(0, noise^2), prior N(0, s^2) (the module's `prior_energy`): the
    posterior is N(mu, Sigma) with Sigma = (X'X / noise^2 + I / s^2)^-1, mu = Sigma X'y /
    noise^2. The prior is as strong as the data here, so a wrong prior moves mu and Sigma."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    n, dim, noise, prior_std = 10, 3, 1.0, 0.3
    x = rng.normal(size=(n, dim))
    y = x @ np.array([1.0, -0.5, 0.25]) + noise * rng.normal(size=n)
    precision = x.T @ x / noise**2 + np.eye(dim) / prior_std**2
    sigma = np.linalg.inv(precision)
    mu = sigma @ x.T @ y / noise**2
    xj, yj = jnp.asarray(x, "float32"), jnp.asarray(y, "float32")

    def potential(theta):
        return 0.5 * jnp.sum((yj - xj @ theta) ** 2) / noise**2 + problems.prior_energy(
            theta, prior_std
        )

    settings = nuts.NutsSettings(num_chains=2, num_warmup=300, num_samples=1500, seed=1)
    result = nuts.run_nuts(potential, np.zeros((2, dim)), settings)
    diag = nuts.diagnostics(result.draws)
    assert result.draws.shape == (2, 1500, dim) and result.divergences == 0
    assert np.all(diag["rhat"] < 1.01)
    flat = result.draws.reshape(-1, dim)
    ess = diag["ess_bulk"]
    sd = np.sqrt(np.diag(sigma))
    # Means: 4 Monte Carlo standard errors (sd / sqrt(ESS)); variances: the sample variance of
    # ESS independent normals has relative sd sqrt(2 / ESS), 4 of them.
    np.testing.assert_array_less(np.abs(flat.mean(axis=0) - mu), 4 * sd / np.sqrt(ess))
    relative = np.abs(flat.var(axis=0, ddof=1) / np.diag(sigma) - 1)
    np.testing.assert_array_less(relative, 4 * np.sqrt(2 / ess))


# ----------------------------------------------------------------------------- the problems


@pytest.mark.parametrize("problem", problems.PROBLEMS)
def test_potential_is_n_times_the_keras_loss_the_methods_minimise(problem):
    """U(theta) (NUTS's target) = N x (mean cross-entropy + the `gaussian_prior` terms) of the
    Keras model holding the same weights: the reference and the methods share one posterior."""
    import keras

    data = problems.load_digits(train_take=300, test_take=10)
    n, prior_std = data.train_size, 0.5
    theta = np.random.default_rng(1).normal(0.0, 0.4, size=problems.num_params(problem))
    model = problems.build_keras_model(problem, prior_std, n)
    model.set_weights(problems.unflatten(theta.astype("float32"), problem))
    np.testing.assert_allclose(problems.flatten(model.get_weights()), theta, atol=1e-6)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    mean_loss = float(loss(data.y_train, model(data.x_train))) + float(sum(model.losses))
    potential = problems.potential_fn(problem, data, prior_std)
    assert float(potential(theta.astype("float32"))) == pytest.approx(n * mean_loss, rel=1e-5)


def test_prior_only_weights_are_the_blank_features_rows():
    data = problems.load_digits()
    blank = data.prior_only_features
    assert blank.any() and not blank.all()
    assert np.all(data.x_train[:, blank] == 0.0)
    mask = problems.prior_only_mask("mlp", data)
    assert mask.sum() == blank.sum() * problems.HIDDEN
    kernel = problems.unflatten(mask, "mlp")[0]
    assert np.array_equal(kernel.any(axis=1), blank)
    assert len(data.y_train) == problems.TRAIN_SIZE and len(data.y_test) == 1797 - 1000


# ----------------------------------------------------------------------------- metrics


def test_distances_are_zero_for_identical_predictives_and_positive_otherwise():
    p = np.random.default_rng(0).dirichlet(np.ones(10), size=50)
    assert metrics.total_variation(p, p) == 0.0
    assert metrics.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert metrics.agreement(p, p) == 1.0
    q = np.roll(p, 1, axis=1)
    assert metrics.total_variation(p, q) > 0.0 and metrics.kl_divergence(p, q) > 0.0
    one, half = np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])
    assert metrics.total_variation(one, half) == pytest.approx(0.5)
    assert metrics.kl_divergence(one, half) == pytest.approx(math.log(2.0))
    with pytest.raises(ValueError, match="shapes"):
        metrics.total_variation(p, p[:, :5])


def test_weight_space_summaries():
    rng = np.random.default_rng(0)
    samples = rng.normal(0.0, 2.0, size=(4000, 3))
    mask = np.array([True, True, False])
    ratio = metrics.variance_ratio(samples, np.full(3, 4.0), mask)
    assert ratio == pytest.approx(1.0, abs=4 * math.sqrt(2 / 4000))
    assert metrics.variance_ratio(samples[:1], np.ones(3), mask) != metrics.variance_ratio(
        samples[:1], np.ones(3), mask
    )  # NaN: one sample has no spread
    error = metrics.mean_error(samples + 2.0, np.zeros(3), np.full(3, 4.0), mask)
    assert error == pytest.approx(1.0, abs=0.1)


# ----------------------------------------------------------------------------- SGHMC plans


@pytest.mark.parametrize("temperature", [1.0, 0.1])
@pytest.mark.parametrize(("name", "counterpart"), [("sghmc", "sgld"), ("csghmc", "csgld")])
def test_sghmc_plans_match_their_sgld_counterpart_in_step_noise_and_budget(
    name, counterpart, temperature
):
    """SGHMC with momentum mu drifts lr / (1 - mu) times the gradient per step and puts a
    variance sigma^2 lr per step on the weights (docs/guide/sghmc.md); sampling p(theta | D)^(1/T)
    needs 2 T (lr / (1 - mu)) / N. The rule of `methods`: the same effective step as the SGLD
    counterpart, hence the same noise per step; and the same gradient budget and sampling."""
    from applications.optimizers import make_optimizer
    from keras_langevin import LSGHMC

    budget, n, steps = methods.Budget(), 1000, 10
    plan = methods.METHODS[name].plan(budget, n, steps, temperature)
    other = methods.METHODS[counterpart].plan(budget, n, steps, temperature)
    mu, lr, sigma = plan.settings["momentum"], plan.settings["lr"], plan.settings["sigma"]
    assert plan.optimizer == "lsghmc" and mu == 0.9
    step = lr / (1 - mu)
    assert step == pytest.approx(other.settings["lr"], rel=1e-12)
    assert sigma**2 * lr == pytest.approx(2 * temperature * step / n, rel=1e-12)
    assert sigma**2 * lr == pytest.approx(other.settings["sigma"] ** 2 * other.settings["lr"])
    assert (plan.runs, plan.epochs, plan.batch_size) == (other.runs, other.epochs, other.batch_size)
    assert plan.runs * plan.epochs == 4 * 400 and plan.sampler == other.sampler
    assert {k: v for k, v in plan.settings.items() if k not in ("lr", "sigma", "momentum")} == {
        k: v for k, v in other.settings.items() if k not in ("lr", "sigma")
    }
    optimizer = make_optimizer(plan.optimizer, steps, seed=0, epochs=plan.epochs, **plan.settings)
    assert isinstance(optimizer, LSGHMC) and optimizer.momentum == pytest.approx(mu)
    assert not optimizer.nesterov


# ----------------------------------------------------------------------------- --quick


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("reference")
    rows = reference_main.main(["--quick", "--output", str(output)])
    return output, rows


def test_quick_writes_its_outputs(quick_run):
    output, rows = quick_run
    for name in ("results.csv", "results.json", "results.md", "distance.png"):
        assert (output / name).stat().st_size > 0, name
    assert (output / "reference-softmax.npz").exists()
    with open(output / "results.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [(r["method"], r["temperature"]) for r in written] == [
        ("map", ""), ("ensemble", ""), ("sgld", "1.0"), ("psgld", "1.0"), ("csgld", "1.0"),
        ("sghmc", "1.0"), ("csghmc", "1.0"),
    ]  # fmt: skip
    budget = reference_main.QUICK_BUDGET
    for row in rows:
        assert 0.0 < row["tv_test"] <= 1.0 and row["kl_test"] > 0.0
        runs = 1 if row["method"] == "map" else budget.chains
        assert row["epochs"] == runs * budget.epochs
    stored = json.loads((output / "results.json").read_text())
    assert stored["references"]["softmax"]["draws"] == 100
    assert "| reference (NUTS) |" in (output / "results.md").read_text()


def test_quick_rerun_reads_everything_back(quick_run, capsys):
    output, rows = quick_run
    capsys.readouterr()
    again = reference_main.main(["--quick", "--output", str(output)])
    assert capsys.readouterr().out.count("evaluated before, skipped") == len(rows)
    assert again == rows
