"""The value types and the list syntax of the shared command-line flags (`applications.cli`).

* argparse `type`s that name the flag and the value on bad input (`positive_int`,
  `langevin_layers`, `epsilon`, `model_option`, ...);
* `ListAction`: lists separated by commas, spaces or both; `add_seeds_argument`, `seeds_of`:
  one integer N >= 1 alone is the N seeds 0..N-1 (0 alone: the seed 0);
* `parse`: `--quick` defaults, then the seeds.

`applications.cli` re-exports every name, as the scripts use them (`cli.positive_int`).
"""

import argparse
import ast

import numpy as np

from applications import optimizers as optimizers_lib

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


class InitAction(argparse.Action):
    """`--init NAME`: appends `("init", NAME)` to the model options (the builders' `init`)."""

    def __call__(self, parser, namespace, value, option_string=None):
        options = [item for item in getattr(namespace, self.dest, None) or [] if item[0] != "init"]
        setattr(namespace, self.dest, [*options, ("init", value)])


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
        help="one integer N: the seeds 0..N-1 (0: the seed 0); several integers, comma or space "
        "separated (or one with a comma, '7,'): those seeds. Each seed gives its own initial "
        f"weights, data order and noise (default: {','.join(map(str, default))})",
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
    return parser, args


def seeds_of(args):
    """The seeds that `--seeds` names: one integer N >= 1 alone is the count 0..N-1, and 0
    alone the seed 0."""
    text = getattr(args, "seeds_text", None)
    if text is not None and len(args.seeds) == 1 and "," not in text:
        return list(range(max(1, args.seeds[0])))
    return list(args.seeds)
