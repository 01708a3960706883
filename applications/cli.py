"""The command-line argument groups that every script shares.

One definition of each flag, one list syntax, one validation and the same messages for
`train`, `compare`, `depth_study` (and the scripts to come):

* lists (`--optimizers`, `--seeds`, `--depths`, `--sigma-sweep`) take values separated by
  commas, spaces or both: `--optimizers adam,ladam` and `--optimizers adam ladam` are the same;
* `--seeds`: one integer N alone means the N seeds 0..N-1; several integers, or a list written
  with a comma (`--seeds 7,`), are those seeds;
* a flag that none of the chosen optimizers would use is refused, naming the flag
  (`--optimizer adam --sigma 0.1`, `--optimizer ladam --langevin-layers 0.5`), so that the
  records of a run never show a value that was not used. `check_optimizer_flags` does this
  after parsing and fills in the defaults of the flags that do apply.
"""

import argparse
import ast

import numpy as np

from applications import optimizers as optimizers_lib

MIXED_PRECISION = ("off", "mixed_float16", "mixed_bfloat16")
NOISES = ("gaussian", "rademacher")

# Defaults of the flags that only some optimizers use; None on the parser means "not given".
LANGEVIN_DEFAULTS = {"sigma_schedule": "log", "noise": "gaussian"}
LAYER_DEFAULTS = {"langevin_layers": optimizers_lib.PAPER_LAYER_FRACTION}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except empty ones and those the help text already states."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default == [] or "default:" in text:
            return text
        return super()._get_help_string(action)


# ----------------------------------------------------------------------------- value types


def number(convert, description, accept):
    """An argparse `type` converting with `convert` and accepting values where `accept` holds."""

    def parse(value):
        try:
            result = convert(value)
        except (TypeError, ValueError):
            result = None
        if result is None or not accept(result):
            raise argparse.ArgumentTypeError(f"expected {description}, got {value!r}")
        return result

    return parse


positive_int = number(int, "a positive integer", lambda n: n >= 1)
non_negative_int = number(int, "an integer >= 0", lambda n: n >= 0)
positive_float = number(float, "a positive number", lambda x: bool(np.isfinite(x)) and x > 0)
non_negative_float = number(float, "a number >= 0", lambda x: bool(np.isfinite(x)) and x >= 0)


def model_name(value):
    from applications import models

    if models.is_model_name(value):
        return value
    raise argparse.ArgumentTypeError(
        f"unknown model {value!r}; expected one of {', '.join(models.MODEL_NAMES)}, "
        f"or {' / '.join(models.PATTERNS)}"
    )


def optimizer_name(value):
    if value not in optimizers_lib.OPTIMIZERS:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer(s) {value!r}; expected names from: "
            f"{', '.join(optimizers_lib.OPTIMIZERS)}"
        )
    return value


def langevin_layers(value):
    """`--langevin-layers`: "all", a fraction in (0, 1], or comma-separated layer names/globs."""
    text = str(value).strip()
    if text.lower() == "all":
        return "all"
    try:
        fraction = float(text)
    except ValueError:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names:
            raise argparse.ArgumentTypeError("expected 'all', a fraction or layer names") from None
        return names
    if not 0.0 < fraction <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction of layers must be in (0, 1], got {text!r}")
    return fraction


def epsilon(value):
    """`--epsilon`: "paper" (the author's bias, mapped), "keras" (Keras's defaults) or a number."""
    if value in optimizers_lib.EPSILON_POLICIES:
        return value
    return number(float, "'paper', 'keras' or a positive number", lambda x: x > 0)(value)


def model_option(text):
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


class ListAction(argparse.Action):
    """`nargs="+"` whose tokens may also hold comma-separated values; keeps a flat list.

    Each value goes through `item` (an argparse type); duplicates are refused. The raw text is
    kept in `<dest>_text` so that `--seeds 5` (a count) and `--seeds 5,` (one seed) differ.
    """

    def __init__(self, option_strings, dest, item=str, **kwargs):
        kwargs.setdefault("nargs", "+")
        super().__init__(option_strings, dest, **kwargs)
        self.item = item

    def __call__(self, parser, namespace, tokens, option_string=None):
        parts = [part.strip() for token in tokens for part in str(token).split(",")]
        values = []
        for part in filter(None, parts):
            try:
                values.append(self.item(part))
            except argparse.ArgumentTypeError as error:
                parser.error(f"{option_string}: {error}")
        if not values:
            parser.error(f"{option_string}: expected at least one value")
        if len(set(values)) != len(values):
            parser.error(f"{self.dest} must be distinct, got {' '.join(tokens)!r}")
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_text", " ".join(tokens))


def add_seeds_argument(parser, default):
    parser.add_argument(
        "--seeds",
        action=ListAction,
        item=non_negative_int,
        default=list(default),
        help="one integer N: the seeds 0..N-1; several integers, comma or space separated (or "
        "one with a comma, '7,'): those seeds. Each seed gives its own initial weights, data "
        f"order and noise (default: {','.join(map(str, default))})",
    )


def parse(build_parser, defaults, quick, argv=None):
    """Parses `argv` with `build_parser(defaults)`, where `--quick` replaces `defaults` by the
    values of `quick` (flags given explicitly still win), and resolves `--seeds`.

    Returns `(parser, args)`.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--quick", action="store_true")
    is_quick = pre.parse_known_args(argv)[0].quick
    parser = build_parser({**defaults, **quick} if is_quick else defaults)
    args = parser.parse_args(argv)
    args.seeds = seeds_of(args)
    if not args.seeds:
        parser.error("--seeds: a count must be >= 1 (write '0,' for the seed 0 alone)")
    return parser, args


def seeds_of(args):
    """The seeds that `--seeds` names: one integer N alone is the count 0..N-1."""
    text = getattr(args, "seeds_text", None)
    if text is not None and len(args.seeds) == 1 and "," not in text:
        return list(range(args.seeds[0]))
    return list(args.seeds)


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


def add_optimizer_arguments(parser, defaults, several=False):
    """The optimizer (`--optimizer`, or `--optimizers` with `several`) and its settings."""
    group = parser.add_argument_group(
        "optimizer",
        "Without --lr/--sigma the paper's initial values are used: 5e-3 for both, except "
        "Adadelta (lr 0.1, sigma 5e-2). <base> is Keras's optimizer, l<base> adds Langevin "
        "noise to every layer, layer-l<base> only to the first --langevin-layers. Flags that "
        "none of the chosen optimizers use are refused.",
    )
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
    group.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="initial learning rate (default: the paper's value for the base optimizer)",
    )
    group.add_argument(
        "--lr-schedule",
        choices=optimizers_lib.LR_SCHEDULES,
        default="inverse-time",
        help="'inverse-time': lr_0 / (1 + t/T), the paper's; or 'constant' (default: %(default)s)",
    )
    group.add_argument(
        "--decay-epochs",
        type=positive_float,
        default=20,
        help="T of the learning-rate and sigma schedules, in epochs (default: %(default)s, as "
        "in the paper)",
    )
    group.add_argument(
        "--epsilon",
        type=epsilon,
        default=None,
        help="epsilon of Adam, RMSprop and Adadelta: 'paper' (the author's preconditioner bias "
        "1e-6 in Keras's form: Adam 1e-6, RMSprop 1e-12, Adadelta 1e-6), 'keras' (Keras's "
        "defaults, 1e-7) or a number (default: %(default)s)",
    )
    group.add_argument(
        "--sigma",
        type=non_negative_float,
        default=None,
        help="initial noise level (Langevin optimizers; default: the paper's value)",
    )
    group.add_argument(
        "--sigma-schedule",
        choices=optimizers_lib.SIGMA_SCHEDULES,
        default=None,
        help="'log': sigma_0 / sqrt(log(e + t/T)), the paper's; or 'constant' (Langevin "
        "optimizers; default: log)",
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


def check_optimizer_flags(parser, args, names):
    """Refuses the flags that none of `names` uses; fills in the defaults of those used.

    Settings that no chosen optimizer uses are set to None, so that the records of the run
    show only what was used.
    """
    kinds = {optimizers_lib.parse_name(name)[1] for name in names}
    bases = {optimizers_lib.parse_name(name)[0] for name in names}
    langevin = kinds != {"plain"}
    layer = "layer" in kinds
    uses_epsilon = bool(bases - {"sgd"})
    given = {
        "--sigma": args.sigma is not None and not langevin,
        "--sigma-schedule": args.sigma_schedule is not None and not langevin,
        "--noise": args.noise is not None and not langevin,
        "--langevin-layers": args.langevin_layers is not None and not layer,
        "--epsilon": args.epsilon is not None and not uses_epsilon,
    }
    args.epsilon_given = args.epsilon is not None
    for flag, refused in given.items():
        if refused:
            user = {
                "--langevin-layers": "only the layer-l<base> optimizers",
                "--epsilon": "only adam, rmsprop and adadelta and their Langevin forms",
            }.get(flag, "only the Langevin optimizers (l<base>, layer-l<base>)")
            parser.error(f"{flag} is used by {user}; not by {', '.join(names)}")
    for key, default in LANGEVIN_DEFAULTS.items():
        value = getattr(args, key)
        setattr(args, key, (default if value is None else value) if langevin else None)
    if args.langevin_layers is None and layer:
        args.langevin_layers = LAYER_DEFAULTS["langevin_layers"]
    args.epsilon = (args.epsilon or "paper") if uses_epsilon else None
