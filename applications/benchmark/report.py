"""The table, the machine and the versions of a benchmark run, and its progress lines."""

import os
import platform

import keras


def format_table(rows):
    lines = [
        "| measurement | optimizer | median | ratio to base | min - max |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        precision = 1 if r["unit"] == "ms" else 2
        median = f"{r['median']:.{precision}f} {r['unit']}"
        if "images_per_second" in r:
            median += f" ({r['images_per_second']:.0f} images/s)"
        lines.append(
            f"| {r['group']} | {r['name']} | {median} | {r['ratio']:.2f} | "
            f"{r['min']:.{precision}f} - {r['max']:.{precision}f} |"
        )
    return "\n".join(lines)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    description = f"{_cpu_model()}, {platform.machine()}, {cores} cores"
    if keras.backend.backend() == "jax":
        import jax

        description = f"{jax.devices()[0].device_kind} ({jax.default_backend()}), " + description
    return description


def versions():
    found = {"python": platform.python_version(), "keras": keras.__version__}
    for module in ("tensorflow", "jax", "numpy"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            continue
    return found


def progress(message):
    """One line of progress, printed (and flushed) as the run goes."""
    print(f"[benchmark] {message}", flush=True)


def progress_rows(rows):
    """A progress line per measured row: its median and its ratio to the base."""
    for r in rows:
        precision = 1 if r["unit"] == "ms" else 2
        progress(f"  {r['name']}: {r['median']:.{precision}f} {r['unit']}, ratio {r['ratio']:.2f}")
