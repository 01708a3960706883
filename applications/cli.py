"""The command-line argument groups that every script shares.

One definition of each flag, one list syntax, one validation and the same messages for
`train`, `compare`, `depth_study` (and the scripts to come):

* lists (`--optimizers`, `--seeds`, `--depths`, `--sigma-sweep`) take values separated by
  commas, spaces or both: `--optimizers adam,ladam` and `--optimizers adam ladam` are the same;
* `--seeds`: one integer N >= 1 alone means the N seeds 0..N-1 (`--seeds 0`: the seed 0);
  several integers, or a list written with a comma (`--seeds 7,`), are those seeds;
* a flag that none of the chosen optimizers would use is refused, naming the flag
  (`--optimizer adam --sigma 0.1`, `--optimizer ladam --langevin-layers 0.5`), so that the
  records of a run never show a value that was not used. `check_optimizer_flags` does this
  after parsing, and refuses settings that cannot run (a cyclical sigma that the run ends
  before turning on) as usage errors. The values themselves are resolved by
  `applications.settings`, the one place that knows the defaults.
"""

import argparse
import contextlib

from applications import optimizers as optimizers_lib
from applications import settings as settings_lib
from applications.cli_values import (  # noqa: F401 (the scripts use them as cli.<name>)
    InitAction,
    ListAction,
    add_seeds_argument,
    epsilon,
    langevin_layers,
    model_name,
    model_option,
    non_negative_float,
    non_negative_int,
    number,
    optimizer_name,
    parse,
    positive_float,
    positive_int,
    seeds_of,
)

MIXED_PRECISION = ("off", "mixed_float16", "mixed_bfloat16")
NOISES = settings_lib.NOISES

# Defaults of the flags that only some optimizers use (from `applications.settings`, which
# owns them); None on the parser means "not given".
LANGEVIN_DEFAULTS = {key: settings_lib.DEFAULTS[key] for key in ("sigma_schedule", "noise")}
LAYER_DEFAULTS = {"langevin_layers": settings_lib.DEFAULTS["langevin_layers"]}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except empty ones and those the help text already states."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default == [] or "default:" in text:
            return text
        return super()._get_help_string(action)


# ----------------------------------------------------------------------------- groups


def add_model_data_arguments(parser, defaults):
    """`--model`, `--model-option`, `--dataset`, `--data-dir`, `--image-size`, `--augment`,
    `--batch-size`, `--train-take`, `--test-take`. `defaults` holds the script's defaults."""
    from applications import data

    group = parser.add_argument_group("model and data")
    if "model" in defaults:
        group.add_argument(
            "--model",
            type=model_name,
            default=defaults["model"],
            help="model name, see applications.models.MODEL_NAMES, or mlp-<depth>, "
            "cnn-<depth>, resnet-<depth>, densenet-<depth> (default: %(default)s)",
        )
        group.add_argument(
            "--model-option",
            dest="model_options",
            type=model_option,
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="extra argument of the model builder, e.g. width=32 or batch_norm=True "
            "(repeatable; VALUE is a Python literal)",
        )
        group.add_argument(
            "--init",
            dest="model_options",
            action=InitAction,
            choices=("he", "glorot", "orthogonal"),
            default=argparse.SUPPRESS,
            help="kernel initialiser of mlp, cnn and resnet builders (the same as "
            "--model-option init=...; recorded with the model options; default: he)",
        )
    group.add_argument(
        "--dataset",
        choices=data.DATASETS,
        default="digits",
        help="dataset; 'digits' is embedded, the others must be prepared with TFDS "
        "(default: %(default)s)",
    )
    group.add_argument("--data-dir", default=None, help="TFDS data directory")
    group.add_argument(
        "--image-size",
        type=positive_int,
        default=defaults.get("image_size"),
        help="resize images to this size (default: the dataset's, 16 for digits)",
    )
    group.add_argument(
        "--augment",
        default=defaults.get("augment", "standard"),
        help="'none', 'standard' (pad, random crop, flip where it makes sense), or keras-cv "
        "policies joined with '+' (randaugment, cutmix, mixup; their random draws are not "
        "reproducible, so resumed runs are exact only with 'none' or 'standard') "
        "(default: %(default)s)",
    )
    for flag, text in (
        ("--batch-size", "batch size (default: %(default)s)"),
        ("--train-take", "use only the first N training examples (smoke tests)"),
        ("--test-take", "use only the first N test examples (smoke tests)"),
    ):
        dest = flag[2:].replace("-", "_")
        group.add_argument(flag, type=positive_int, default=defaults.get(dest), help=text)


def _choices_help(docs):
    return "; ".join(f"'{name}': {text}" for name, text in docs.items())


def add_optimizer_arguments(parser, defaults, several=False):
    """The optimizer (`--optimizer`, or `--optimizers` with `several`) and its settings.

    `defaults` may set the script's `lr_schedule` and `sigma_schedule` (else the paper's);
    pass the same dict to `check_optimizer_flags`.
    """
    group = parser.add_argument_group(
        "optimizer",
        "Without --lr/--sigma the paper's initial values are used: 5e-3 for both, except "
        "Adadelta (lr 0.1, sigma 5e-2). <base> is Keras's optimizer, l<base> adds Langevin "
        "noise to every layer, layer-l<base> only to the first --langevin-layers. Flags that "
        "none of the chosen optimizers use are refused. In the schedules t is the optimizer "
        "step and T is --decay-epochs epochs worth of steps.",
    )
    _add_optimizer_choice(group, defaults, several)
    _add_learning_rate_arguments(group, defaults)
    _add_noise_arguments(group, defaults)


def _add_learning_rate_arguments(group, defaults):
    """--lr, --lr-schedule, --decay-epochs (T of both schedules) and --epsilon."""
    group.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="initial learning rate (default: the paper's value for the base optimizer)",
    )
    group.add_argument(
        "--lr-schedule",
        choices=optimizers_lib.LR_SCHEDULES,
        default=defaults.get("lr_schedule", settings_lib.DEFAULTS["lr_schedule"]),
        help=_choices_help(optimizers_lib.LR_SCHEDULE_DOCS) + " (default: %(default)s)",
    )
    group.add_argument(
        "--decay-epochs",
        type=positive_float,
        default=None,
        help=f"T of the learning-rate and sigma schedules, in epochs (default: "
        f"{settings_lib.PAPER_DECAY_EPOCHS}, the paper's; with a 'cosine' schedule, --epochs)",
    )
    group.add_argument(
        "--epsilon",
        type=epsilon,
        default=None,
        help="epsilon of the optimizers that have one (all but SGD and SGHMC): 'paper' (the "
        "author's preconditioner bias 1e-6 in Keras's form: Adam, AdamW, Nadam 1e-6, RMSprop "
        "1e-12, Adadelta 1e-6), 'keras' (Keras's defaults, 1e-7) or a number (default: paper)",
    )


def _add_noise_arguments(group, defaults):
    """--sigma, --sigma-schedule, --noise and --langevin-layers."""
    group.add_argument(
        "--sigma",
        type=non_negative_float,
        default=None,
        help="initial noise level (Langevin optimizers; default: the paper's value)",
    )
    sigma_default = defaults.get("sigma_schedule", settings_lib.DEFAULTS["sigma_schedule"])
    group.add_argument(
        "--sigma-schedule",
        choices=optimizers_lib.SIGMA_SCHEDULES,
        default=None,
        help=_choices_help(optimizers_lib.SIGMA_SCHEDULE_DOCS)
        + f" (Langevin optimizers; default: {sigma_default})",
    )
    group.add_argument(
        "--noise",
        choices=NOISES,
        default=None,
        help="noise of the Langevin optimizers (default: gaussian)",
    )
    group.add_argument(
        "--langevin-layers",
        type=langevin_layers,
        default=None,
        help="layers that get noise with the layer-* optimizers: a fraction of the layers "
        "nearest the input, comma-separated layer names or globs, or 'all' (default: "
        f"{optimizers_lib.PAPER_LAYER_FRACTION}, the paper's)",
    )


def _add_optimizer_choice(group, defaults, several):
    if several:
        group.add_argument(
            "--optimizers",
            action=ListAction,
            item=optimizer_name,
            default=list(defaults["optimizers"]),
            help=f"optimizer names, comma or space separated, among "
            f"{', '.join(optimizers_lib.OPTIMIZERS)} (default: "
            f"{','.join(defaults['optimizers'])})",
        )
    else:
        group.add_argument(
            "--optimizer",
            choices=optimizers_lib.OPTIMIZERS,
            default=defaults["optimizer"],
            help="optimizer (default: %(default)s)",
        )


def add_execution_arguments(parser, defaults):
    group = parser.add_argument_group("execution")
    group.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISION,
        default="off",
        help="Keras dtype policy for the model (default: %(default)s)",
    )
    group.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=defaults.get("verbose", 1),
        help="0: silent, 1: progress bar, 2: one line per epoch (default: %(default)s)",
    )


def add_distribution_arguments(parser):
    """`--distribute` (several devices or hosts), `--cpu-devices`, `--model-shards`."""
    from applications import distribute

    group = parser.add_argument_group(
        "distribution",
        "--batch-size is the global batch, split among the replicas; the learning-rate and "
        "sigma schedules count global steps. See applications/distribute.py.",
    )
    group.add_argument(
        "--distribute",
        choices=distribute.MODES,
        default="off",
        help="TensorFlow: 'mirrored' (every local GPU, else the CPU devices), 'multi-worker' "
        "(one process per host, the cluster in TF_CONFIG). JAX: 'data-parallel' (every "
        "device; several processes with KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, "
        "_PROCESS_ID), 'model-parallel' (kernels sharded over --model-shards devices) "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--cpu-devices",
        type=positive_int,
        default=None,
        help="split the CPU into N logical devices (mirrored, data-parallel, model-parallel "
        "without GPUs: tests and trials on one machine)",
    )
    group.add_argument(
        "--model-shards",
        type=positive_int,
        default=None,
        help="model-parallel: devices a kernel is sharded over (must divide the device "
        "count; default: all)",
    )


def setup_distribution(parser, args):
    """The `applications.distribute.Distribution` of the parsed flags; a usage error (exit 2,
    nothing written) for one that cannot run here. Call it before building anything."""
    from applications import distribute

    try:
        distribution = distribute.setup(args.distribute, args.cpu_devices, args.model_shards)
        distribution.check_batch_size(args.batch_size)
    except distribute.DistributionError as error:
        parser.error(str(error))
    return distribution


# ----------------------------------------------------------------------------- checks


FLAG_USERS = {
    "langevin_layers": "only the layer-l<base> optimizers",
    "epsilon": "only the optimizers with an epsilon (all but sgd and sghmc)",
}
OPTIMIZER_SETTINGS = ("lr", "lr_schedule", "decay_epochs", "epsilon", "sigma", "sigma_schedule")
OPTIMIZER_SETTINGS += ("noise", "langevin_layers")


def flag(key):
    """The command-line flag of a setting: `decay_epochs` -> `--decay-epochs`."""
    return "--" + key.replace("_", "-")


def check_optimizer_flags(parser, args, names, defaults=None):
    """Refuses the flags that none of `names` uses, and settings that cannot run (usage errors,
    exit 2, naming the flags and values); fills in the defaults of the flags that apply.

    Settings that no chosen optimizer uses are set to None, so that the records of the run
    show only what was used. `defaults` are the script's (its `sigma_schedule`), as given to
    `add_optimizer_arguments`. The values of each optimizer are resolved by
    `applications.settings` (a run's records hold those).
    """
    defaults = defaults or {}
    given = {key: getattr(args, key) for key in ("sigma", "sigma_schedule", "noise", "epsilon")}
    given["langevin_layers"] = args.langevin_layers
    for key in settings_lib.unused(names, **given):
        user = FLAG_USERS.get(key, "only the Langevin optimizers (l<base>, layer-l<base>)")
        parser.error(f"{flag(key)} is used by {user}; not by {', '.join(names)}")
    args.epsilon_given = args.epsilon is not None
    kinds = {optimizers_lib.parse_name(name)[1] for name in names}
    langevin = kinds != {"plain"}
    script = {**LANGEVIN_DEFAULTS, **{k: v for k, v in defaults.items() if k in LANGEVIN_DEFAULTS}}
    for key, default in script.items():
        value = getattr(args, key)
        setattr(args, key, (default if value is None else value) if langevin else None)
    if args.langevin_layers is None and "layer" in kinds:
        args.langevin_layers = LAYER_DEFAULTS["langevin_layers"]
    uses_epsilon = any(settings_lib.uses_epsilon(name) for name in names)
    args.epsilon = (args.epsilon or settings_lib.DEFAULTS["epsilon"]) if uses_epsilon else None
    resolved = [resolve_flags(parser, args, name) for name in names]
    args.decay_epochs = resolved[0].decay_epochs  # the same for every name


def resolve_flags(parser, args, name):
    """`applications.settings.resolve` of the parsed flags for the optimizer `name`; a bad
    setting is a usage error naming the flags and their values."""
    values = {key: getattr(args, key, None) for key in OPTIMIZER_SETTINGS}
    epochs = getattr(args, "epochs", None)
    try:
        return settings_lib.resolve(name, epochs=epochs, **values)
    except settings_lib.SettingsError as error:
        shown = {**values, "epochs": epochs}
        flags = " ".join(
            f"{flag(key)} {shown[key]}" for key in error.keys if shown.get(key) is not None
        )
        parser.error(f"{flags + ': ' if flags else ''}{error}")


@contextlib.contextmanager
def usage_errors(parser):
    """Turns the `applications.settings.SettingsError` (the engine's `UsageError`, settings
    mismatches included) raised inside the block into a usage error: message, exit 2."""
    try:
        yield
    except settings_lib.SettingsError as error:
        parser.error(str(error))
