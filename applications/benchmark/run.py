"""The command line of `python -m applications.benchmark`: the flags, and the run of every
chosen measurement in turn, printed as it goes, then the table and the JSON."""

import argparse
import json
import os
import sys

import keras

from applications.benchmark.common import PAIRS
from applications.benchmark.end_to_end import bench_end_to_end
from applications.benchmark.floors import bench_floors
from applications.benchmark.report import format_table, machine_description, progress, versions
from applications.benchmark.startup import STARTUP_MODELS, bench_startup
from applications.benchmark.strategy import bench_strategy
from applications.benchmark.update_steps import bench_layer_langevin, bench_update_steps
from applications.cli import positive_float, positive_int

PROG = "python -m applications.benchmark"
DESCRIPTION = "Cost of the Langevin term, measured side by side with the base Keras optimizer."


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument(
        "--sizes",
        type=positive_float,
        nargs="+",
        default=None,
        help="update-step sizes in millions of parameters (default 1 15)",
    )
    parser.add_argument("--optimizers", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--repeats", type=positive_int, default=None)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument(
        "--skip-startup", action="store_true", help="no first-epoch runs in fresh processes"
    )
    parser.add_argument(
        "--startup-models",
        nargs="+",
        default=None,
        choices=list(STARTUP_MODELS),
        help="models of the start-up rows (default both; --quick: mlp-60)",
    )
    parser.add_argument(
        "--startup-repeats", type=positive_int, default=None, help="fresh processes per optimizer"
    )
    parser.add_argument("--skip-floor", action="store_true", help="no floor measurement")
    parser.add_argument(
        "--skip-strategy",
        action="store_true",
        help="no measurement under a distribution (TensorFlow: MirroredStrategy; JAX: "
        "DataParallel; 2 logical CPUs)",
    )
    parser.add_argument(
        "--skip-update-step", action="store_true", help="only the end-to-end measurements"
    )
    parser.add_argument(
        "--images",
        type=positive_int,
        default=None,
        help="synthetic images per resnet56 epoch (default 256, quick 64)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32, help="resnet56 batch size")
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="XLA-compile the models' train step in the end-to-end runs "
        "(Keras leaves it uncompiled on CPU by default)",
    )
    parser.add_argument(
        "--mixed-precision",
        default=None,
        choices=["mixed_float16", "mixed_bfloat16"],
        help="global dtype policy for the end-to-end runs",
    )
    parser.add_argument("--output", default="runs/benchmark.json")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sizes = [int(s * 1e6) for s in (args.sizes or ([1.0] if args.quick else [1.0, 15.0]))]
    repeats = args.repeats or (3 if args.quick else 7)
    rows = []
    progress(f"backend {keras.backend.backend()}; results at the end and in {args.output}")
    if not args.skip_startup and not args.skip_update_step:
        models = args.startup_models or (["mlp-60"] if args.quick else list(STARTUP_MODELS))
        startup_repeats = args.startup_repeats or (1 if args.quick else 2)
        rows += bench_startup(models, args.optimizers, startup_repeats)
    if not args.skip_update_step:
        rows += bench_update_steps(sizes, args.optimizers, repeats)
        rows += bench_update_steps(sizes[-1:], ["ladam"], repeats, noises=("rademacher",))
        rows += bench_layer_langevin(sizes[-1], repeats)
    if not args.skip_floor and not args.skip_update_step:
        rows += bench_floors(repeats)
    if not args.skip_strategy:
        rows += bench_strategy(sizes[-1], repeats)
    if not args.skip_end_to_end:
        if args.mixed_precision:
            keras.mixed_precision.set_global_policy(args.mixed_precision)
        e2e_repeats = args.repeats or (2 if args.quick else 12)
        rows += bench_end_to_end(
            args.quick,
            e2e_repeats,
            args.images,
            args.batch_size,
            True if args.jit_compile else "auto",
        )
    result = {
        "backend": keras.backend.backend(),
        "machine": machine_description(),
        "keras": keras.__version__,
        "versions": versions(),
        "argv": sys.argv[1:] if argv is None else argv,
        "mixed_precision": args.mixed_precision,
        "jit_compile": args.jit_compile,
        "rows": rows,
    }
    policy = f", end to end under {args.mixed_precision}" if args.mixed_precision else ""
    print(f"\nbackend {result['backend']} on {result['machine']}{policy}\n")
    print(format_table(rows))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {args.output}")
    return result
