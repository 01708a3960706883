"""`RunConfig`: everything that determines a run's computation, and the usage errors.

A config holds the settings as given (None for an optimizer setting: its default); the
optimizer's are resolved by `applications.settings`, and `RunConfig.settings()` (what a run's
records and backups keep) holds the resolved values.
"""

import dataclasses
import json

from applications import files
from applications import settings as settings_lib

#: A setting that cannot run (unknown layer name, missing dataset...): a usage error.
UsageError = settings_lib.SettingsError


class SettingsMismatchError(UsageError):
    """A run directory holds a backup of a run with other settings."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The settings of one run, as given; None for an optimizer setting means its default.

    `optimizer_settings()` resolves the optimizer's settings (`applications.settings`, the one
    place that knows the defaults), and `settings()`, what the records keep, holds those
    resolved values: settings that the optimizer does not use are None there, never defaults.
    """

    model: str = "resnet20"
    model_options: tuple = ()
    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    augment: str = "standard"
    batch_size: int = 32
    train_take: int | None = None
    test_take: int | None = None
    optimizer: str = "layer-ladam"
    lr: float | None = None
    lr_schedule: str | None = None
    decay_epochs: float | None = None
    epsilon: str | float | None = None
    sigma: float | None = None
    sigma_schedule: str | None = None
    noise: str | None = None
    langevin_layers: object = None
    seed: int = 0
    epochs: int = 10
    mixed_precision: str = "off"
    # Extra keyword arguments of the optimizer (`applications.settings.resolve`), as
    # (KEY, VALUE) pairs, e.g. (("rho", 0.99),); None: none (and then absent from `settings()`).
    optimizer_options: tuple | None = None

    # Not part of the computation: a backup made with other values may be resumed.
    RESUMABLE_CHANGES = ("data_dir", "epochs")
    # The fields that `applications.settings.resolve` fills in.
    OPTIMIZER_FIELDS = (
        "lr",
        "lr_schedule",
        "decay_epochs",
        "epsilon",
        "sigma",
        "sigma_schedule",
        "noise",
        "langevin_layers",
    )

    def __post_init__(self):
        object.__setattr__(self, "model_options", tuple(map(tuple, self.model_options)))
        if self.optimizer_options is not None:
            options = tuple(map(tuple, self.optimizer_options))
            object.__setattr__(self, "optimizer_options", options)
        if isinstance(self.langevin_layers, list):
            object.__setattr__(self, "langevin_layers", tuple(self.langevin_layers))
        self.optimizer_settings()  # bad settings fail here, at construction

    def optimizer_settings(self):
        """The optimizer's resolved `applications.settings.OptimizerSettings`."""
        given = {key: getattr(self, key) for key in self.OPTIMIZER_FIELDS}
        return settings_lib.resolve(
            self.optimizer, epochs=self.epochs, **given, **dict(self.optimizer_options or ())
        )

    @classmethod
    def from_args(cls, args, **overrides):
        """The config of parsed arguments (`applications.cli` groups), with `overrides`."""
        names = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in vars(args).items() if key in names}
        return cls(**{**values, **overrides})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def settings(self):
        """The settings that determine the computation, resolved, in their JSON form."""
        resolved = self.optimizer_settings()
        settings = {
            key: getattr(resolved, key) if key in self.OPTIMIZER_FIELDS else value
            for key, value in dataclasses.asdict(self).items()
            if key not in self.RESUMABLE_CHANGES
        }
        if resolved.exploration_fraction is not None:  # the cyclical sigma's default, recorded
            options = dict(self.optimizer_options or ())
            options.setdefault("exploration_fraction", resolved.exploration_fraction)
            settings["optimizer_options"] = tuple(options.items())
        if settings.get("optimizer_options") is None:  # as in backups made before the field
            settings.pop("optimizer_options", None)
        return json.loads(json.dumps(settings, default=files.json_default))

    @classmethod
    def resolve_settings(cls, settings, epochs):
        """`settings` (a record's, this version's or an older one) with its defaults resolved
        for a run of `epochs`: an older record's None or "paper" becomes the values it ran
        with."""
        names = {field.name for field in dataclasses.fields(cls)} - {"epochs"}
        given = {key: value for key, value in settings.items() if key in names}
        config = cls(**given, epochs=epochs)
        return config.settings()
