"""The study's optimizers (Keras names and the two controls) and its plan of runs.

Names: every name of `applications.optimizers.OPTIMIZERS`, plus the two controls of a Layer
Langevin optimizer `layer-l<base>`:

* ``iso-layer-l<base>``: the same layers get isotropic Gaussian noise of matched scale (the
  preconditioner is replaced by its mean over each variable, `controls.py`): is it the
  preconditioner that helps?
* ``rescaled-<base>``: the noiseless base optimizer whose Layer-Langevin layers are rescaled,
  after every epoch, to the norms `layer-l<base>` reached at that epoch (same depth, seed):
  is it the noise, or bigger weights?

A run is a :class:`RunSpec`; the tuning runs (learning rate on the validation split) are
:class:`TuneSpec`.
"""

from __future__ import annotations

import dataclasses

from applications.optimizers import parse_name

CONTROLS = ("iso", "rescaled")


def study_kind(name):
    """`(base, kind)` of a study name: kind in plain, langevin, layer, iso, rescaled."""
    if name.startswith("iso-layer-l"):
        base, kind = parse_name(name[len("iso-") :])
        return base, "iso"
    if name.startswith("rescaled-"):
        base, kind = parse_name(name[len("rescaled-") :])
        if kind == "plain":
            return base, "rescaled"
        raise ValueError(f"Unknown study optimizer {name!r}")
    return parse_name(name)


def check_name(name):
    """Raises ValueError naming `name` if it is neither an optimizer nor a control."""
    try:
        study_kind(name)
    except ValueError:
        raise ValueError(
            f"Unknown optimizer {name!r}: expected an applications.optimizers name or a "
            "control iso-layer-l<base> / rescaled-<base>"
        ) from None


def base_of(name):
    return study_kind(name)[0]


def is_langevin(name):
    """Whether `name` adds noise (a Langevin optimizer or the isotropic control)."""
    return study_kind(name)[1] in ("langevin", "layer", "iso")


def layer_of(name):
    """The Layer Langevin optimizer a control is built from (`layer-l<base>`)."""
    return f"layer-l{base_of(name)}"


def keras_name(name):
    """The `applications.optimizers` name whose settings a study name runs with."""
    kind = study_kind(name)[1]
    return layer_of(name) if kind == "iso" else base_of(name) if kind == "rescaled" else name


def lr_source(name):
    """Whose tuned learning rate `name` uses: its own; a control, its Keras twin's."""
    return keras_name(name)


def controls_of(optimizers, controls):
    """The control names for every `layer-l<base>` of `optimizers`."""
    names = []
    for name in optimizers:
        if study_kind(name)[1] == "layer":
            base = base_of(name)
            names += [f"iso-{name}" if c == "iso" else f"rescaled-{base}" for c in controls]
    return names


def order(names):
    """Execution order inside a depth: bases, Langevin, Layer Langevin, then the controls
    (the rescaled control reads the norms of the Layer Langevin runs)."""
    rank = {"plain": 0, "langevin": 1, "layer": 2, "iso": 3, "rescaled": 4}
    return sorted(dict.fromkeys(names), key=lambda n: (rank[study_kind(n)[1]], names.index(n)))


def format_sigma(sigma):
    """Canonical text of a noise level, as written in the CSV and the keys."""
    return format(float(sigma), ".6g")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    depth: int
    seed: int
    optimizer: str
    sigma: str  # format_sigma(initial sigma); "0" for noiseless optimizers

    @property
    def key(self):
        return f"{self.depth}|{self.seed}|{self.optimizer}|{self.sigma}"

    def label(self, family):
        noise = f" sigma={self.sigma}" if is_langevin(self.optimizer) else ""
        return f"{family}-{self.depth} seed={self.seed} {self.optimizer}{noise}"


@dataclasses.dataclass(frozen=True)
class TuneSpec:
    depth: int
    seed: int
    optimizer: str
    lr: str  # format_sigma(learning rate)

    @property
    def key(self):
        return f"{self.depth}|{self.seed}|{self.optimizer}|lr={self.lr}"

    def label(self, family):
        return f"tune {family}-{self.depth} seed={self.seed} {self.optimizer} lr={self.lr}"


def plan_runs(depths, seeds, optimizers, sigma_of, sigma_sweep=()):
    """All runs in execution order: ``[(depth, [((optimizer, sigma), [RunSpec per seed])])]``.

    `sigma_of(name)` is the initial sigma of `name` in the main grid (0: noiseless). The sigma
    sweep adds, at the deepest depth, every Langevin optimizer at every swept sigma (a value
    equal to the main grid's is the same run, done once). Runs are grouped by configuration
    inside a depth, so that each configuration is compiled once for all seeds.
    """
    deepest = max(depths)
    swept = [n for n in order(list(optimizers)) if study_kind(n)[1] in ("langevin", "layer")]
    plan = []
    for depth in depths:
        configs = [(name, format_sigma(sigma_of(name))) for name in order(list(optimizers))]
        if depth == deepest:
            configs += [(name, format_sigma(value)) for name in swept for value in sigma_sweep]
        configs = list(dict.fromkeys(configs))
        plan.append(
            (
                depth,
                [
                    ((name, noise), [RunSpec(depth, seed, name, noise) for seed in seeds])
                    for name, noise in configs
                ],
            )
        )
    return plan


def planned_specs(plan):
    """The flat list of the runs of `plan`."""
    return [spec for _, configs in plan for _, specs in configs for spec in specs]


def tunable(optimizers):
    """The names whose learning rate is tuned (controls reuse their twin's)."""
    return list(dict.fromkeys(lr_source(name) for name in order(list(optimizers))))


def plan_tuning(depths, seeds, optimizers, lrs_of):
    """The tuning runs: ``{depth: [(optimizer, lr, [TuneSpec per seed])]}``; `lrs_of(name)`
    is the grid of `name`."""
    return {
        depth: [
            (name, lr, [TuneSpec(depth, seed, name, format_sigma(lr)) for seed in seeds])
            for name in tunable(optimizers)
            for lr in lrs_of(name)
        ]
        for depth in depths
    }
