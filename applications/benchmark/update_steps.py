"""The update step alone, base against Langevin optimizer, and Layer Langevin against full."""

import statistics

import keras
import numpy as np

import keras_langevin as kl
from applications.benchmark.common import (
    CONDITIONS,
    PAIRS,
    compare,
    condition_label,
    conv_kernel_shapes,
    default_conditions,
    kernel_model,
    kernel_variables,
    make_row,
    update_step_runner,
)
from applications.benchmark.report import progress, progress_rows


def bench_update_steps(sizes, pairs, repeats, noises=("gaussian",), conditions=None):
    rows = []
    for condition in conditions or default_conditions():
        jit_compile = CONDITIONS[condition][0]
        for size in sizes:
            shapes = conv_kernel_shapes(size)
            params = sum(int(np.prod(s)) for s in shapes)
            group = (
                f"update step, {params / 1e6:.1f}M params in {len(shapes)} kernels, "
                f"{condition_label(condition)}"
            )
            for pair in pairs:
                langevin_cls, base_cls = PAIRS[pair]
                runners = {
                    base_cls.__name__: update_step_runner(
                        base_cls(learning_rate=1e-3), *kernel_variables(shapes), jit_compile
                    )
                }
                for noise in noises:
                    optimizer = langevin_cls(learning_rate=1e-3, sigma=1e-3, seed=0, noise=noise)
                    label = langevin_cls.__name__ + ("" if noise == "gaussian" else f" ({noise})")
                    runners[label] = update_step_runner(
                        optimizer, *kernel_variables(shapes), jit_compile
                    )
                # The base again, on variables of its own: how far timing noise alone moves a
                # ratio in this group (its graph is the base's, op for op).
                runners[f"{base_cls.__name__} (control)"] = update_step_runner(
                    base_cls(learning_rate=1e-3), *kernel_variables(shapes), jit_compile
                )
                progress(f"{group}: {', '.join(runners)}")
                times = compare(runners, repeats)
                base = times[base_cls.__name__]
                for name, t in times.items():
                    row = make_row(group, name, t, base)
                    row["condition"] = condition
                    rows.append(row)
                progress_rows(rows[-len(times) :])
                keras.backend.clear_session()
    return rows


def bench_layer_langevin(size, repeats, fraction=0.3, conditions=None):
    shapes = conv_kernel_shapes(size)
    params = sum(int(np.prod(s)) for s in shapes)
    rows = []
    for condition in conditions or default_conditions():
        jit_compile = CONDITIONS[condition][0]
        group = (
            f"Layer Langevin {fraction} vs full, {params / 1e6:.1f}M params, "
            f"{condition_label(condition)}"
        )
        label = f"LAdam layers={fraction}"
        runners = {
            "Adam": update_step_runner(
                keras.optimizers.Adam(1e-3), *kernel_variables(shapes), jit_compile
            ),
            "LAdam": update_step_runner(
                kl.LAdam(1e-3, sigma=1e-3, seed=0), *kernel_variables(shapes), jit_compile
            ),
            label: _layer_runner(shapes, fraction, jit_compile),
            "Adam (control)": update_step_runner(
                keras.optimizers.Adam(1e-3), *kernel_variables(shapes), jit_compile
            ),
        }
        progress(f"{group}: {', '.join(runners)}")
        times = compare(runners, repeats)
        group_rows = [make_row(group, name, t, times["Adam"]) for name, t in times.items()]
        base = statistics.median(times["Adam"])
        full_extra = statistics.median(times["LAdam"]) - base
        layer_extra = statistics.median(times[label]) - base
        group_rows[2]["extra_cost_vs_full"] = layer_extra / full_extra if full_extra > 0 else None
        for row in group_rows:
            row["condition"] = condition
        progress_rows(group_rows)
        rows += group_rows
        keras.backend.clear_session()
    return rows


def _layer_runner(shapes, fraction, jit_compile):
    """The update step of Layer LAdam (`fraction` of the layers, nearest the input first) on
    the variables of `kernel_model`, each its own layer."""
    model, variables, grads = kernel_model(shapes)
    optimizer = kl.LAdam(1e-3, sigma=1e-3, seed=0, langevin_layers=fraction)
    optimizer.set_model(model)
    return update_step_runner(optimizer, variables, grads, jit_compile)
