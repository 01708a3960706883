"""Posterior sampling against point estimates and a deep ensemble: accuracy, calibration, and
uncertainty off the training distribution.

    python -m applications.sample                  # mlp-3 on the 8x8 digits, 3 seeds
    python -m applications.sample --quick          # smoke test, seconds per method
    python -m applications.sample --methods adam,psgld --seeds 5 --epochs 200
    python -m applications.sample --distribute mirrored     # every local GPU (TensorFlow)

Methods (`--methods`), all with the same model and the same prior; the budget of each, in
epochs of training (one epoch = one pass of gradients over the training split), is stated in
the results:

    adam           one model, Keras's Adam, lr 1e-3 (constant): `--epochs` epochs
    sgd            one model, Keras's SGD, lr 0.05 (constant): `--epochs` epochs
    deep-ensemble  `--ensemble-size` M models trained with adam as above, each from its own
                   initial weights (seed derived from the seed and the member's index) and its
                   own data order, each fully trained for `--epochs` epochs like the single
                   models (budget M x epochs), its predictions averaged
    clsgd          cyclical SGLD (cSG-MCMC, Zhang et al. 2020): LSGD with
                   `CyclicalCosineDecay(0.1)` and `CyclicalSigma(posterior sigma)` in `--cycles`
                   cycles; no noise in the first 80% of a cycle, samples after the last
                   `--samples-per-cycle` epochs of each cycle
    csghmc         cyclical SGHMC (cSG-MCMC's SGHMC form): LSGHMC, the noise in the momentum
                   buffer, momentum 0.9, lr 0.01 (the same effective step lr / (1 - momentum)
                   as clsgd's 0.1, a rule fixed beforehand), the same cycles, schedules and
                   samples as clsgd, sigma = posterior_sigma(N, T, momentum=0.9)
    psgld          pSGLD (Li et al. 2016): LRMSprop with rho 0.99, lr 1e-3 (constant), the
                   posterior sigma; burn-in epochs / 2, then 10 samples evenly spaced

The Langevin methods (clsgd, csghmc, psgld) spend `--epochs` epochs in one chain. Before the
fixed protocol (2026-12-04; that table is in docs/results/earlier_runs.md) the ensemble's
members trained epochs / M epochs each.

The posterior: the loss is the mean cross-entropy over the N training examples plus an L2
regulariser on every Dense kernel (the mlp's `l2` model option), `lam = 1 / (2 N s^2)` with
s = `--prior-std`: a Gaussian prior N(0, s^2) on the kernels, flat on the biases. The
Langevin methods use `sigma = keras_langevin.sampling.posterior_sigma(N, --temperature)`
(csghmc: with `momentum=0.9`; T = 1: the posterior; `--temperature` below 1: a cold posterior); the
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

from applications.sample.evaluation import (
    EVALUATED,
    NOT_EVALUATED,
    OTHER_SETTINGS,
    evaluate,
    evaluation_settings,
    evaluation_state,
    train_and_evaluate,
    train_run,
)
from applications.sample.main import main
from applications.sample.plan import (
    ADAM_LR,
    CLSGD_LR,
    COLUMNS,
    CSGHMC_LR,
    CSGHMC_MOMENTUM,
    DEFAULTS,
    EXPLORATION_FRACTION,
    LABELS,
    METHODS,
    PSGLD_LR,
    PSGLD_RHO,
    PSGLD_SAMPLES,
    QUICK,
    SGD_LR,
    Data,
    Run,
    build_parser,
    check_plans,
    load_data,
    member_seed,
    parse_args,
    plan,
    prior_l2,
)
from applications.sample.shifts import (
    NOISE_STD,
    ROTATION_DEGREES,
    SHIFT_SEED,
    SPLITS,
    shifted_sets,
)
from applications.sample.summary import markdown_table, plot_entropy, plot_reliability

__all__ = [
    "ADAM_LR", "CLSGD_LR", "COLUMNS", "CSGHMC_LR", "CSGHMC_MOMENTUM", "DEFAULTS", "EVALUATED",
    "EXPLORATION_FRACTION", "LABELS", "METHODS", "NOISE_STD", "NOT_EVALUATED", "OTHER_SETTINGS",
    "PSGLD_LR", "PSGLD_RHO", "PSGLD_SAMPLES", "QUICK", "ROTATION_DEGREES", "SGD_LR", "SHIFT_SEED",
    "SPLITS", "Data", "Run", "build_parser", "check_plans", "evaluate", "evaluation_settings",
    "evaluation_state", "load_data", "main", "markdown_table", "member_seed", "parse_args",
    "plan", "plot_entropy", "plot_reliability", "prior_l2", "shifted_sets", "train_and_evaluate",
    "train_run",
]  # fmt: skip
