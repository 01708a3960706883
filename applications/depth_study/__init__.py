"""Depth study, controlled: does the gain of Langevin noise grow with depth, and why?

Tests the claim of P. Bras, "Langevin algorithms for very deep Neural Networks with
application to image classification" (arXiv 2212.14718), under controls:

    python -m applications.depth_study --family mlp --depths 10 20 30 40 60 --seeds 10 \\
        --optimizers adam ladam layer-ladam --epochs 20 --output runs/depth-mlp

* Kernel initialiser: `--init he|glorot|orthogonal` (default He, the ReLU networks'
  choice); recorded in ``config.json``, every run's entry and ``results.md``.
* Tuned baselines: before the paired runs of a depth, every optimizer's learning rate is
  chosen from `--lr-grid` (multipliers of its default) on a validation split carved from the
  training set (its last `--validation-fraction`; the test set is never read), highest final
  validation accuracy over `--tune-seeds` seeds. `--lr` fixes it instead (no tuning).
* Controls of every `layer-l<base>` (`--controls`): ``iso-layer-l<base>``, isotropic noise
  of matched scale on the same layers, and ``rescaled-<base>``, the noiseless optimizer whose
  Layer Langevin layers are rescaled after every epoch to the norms Layer Langevin reached
  (`controls.py`).
* Paired runs: every optimizer of a (depth, seed) starts from the same initial weights
  (`initial_weights/`), sees the same batches and gets the seed as its noise seed.
  Differences against the base are reported with bootstrap 95% intervals and sign-flip
  p-values, Holm-corrected across depths (`stats.py`).

Modules: `plan.py` (names, runs), `state.py` (files, resume), `controls.py`, `runner.py`
(data, trainer, runs), `loop.py` (the loop), `stats.py`, `results.py` (the report through
`applications.report`), `main.py` (command line).

Output directory (``--output``): ``runs.csv`` (one row per epoch of every paired run:
family, depth, seed, optimizer, sigma, lr, epoch, loss, accuracy, val_loss, val_accuracy,
seconds; ``val_*`` on the test split), ``tuning.csv`` (the same for the tuning runs, ``val_*``
on the validation split), ``completed.json`` (finished runs with their initial-weights
fingerprint, init, learning rate and, for Layer Langevin, the per-epoch norms; the tuning
results; the invocations), ``config.json`` (settings; resuming with other settings is a
usage error, exit 2), ``tuned_lr.json``, ``results.md`` and ``differences_vs_depth.png``.

Resuming: the same command skips what ``completed.json`` lists (a paired run also needs all
its epochs in ``runs.csv``); a run interrupted mid-way is redone from its start.
"""

from applications.depth_study.main import (
    DEFAULTS,
    QUICK,
    build_parser,
    initial_weights_path,
    main,
    parse_args,
    run_config,
)
from applications.depth_study.plan import RunSpec, TuneSpec, plan_runs, planned_specs
from applications.depth_study.runner import weights_fingerprint
from applications.depth_study.state import CSV_FIELDS, ConfigMismatchError

__all__ = [
    "CSV_FIELDS",
    "DEFAULTS",
    "QUICK",
    "ConfigMismatchError",
    "RunSpec",
    "TuneSpec",
    "build_parser",
    "initial_weights_path",
    "main",
    "parse_args",
    "plan_runs",
    "planned_specs",
    "run_config",
    "weights_fingerprint",
]
