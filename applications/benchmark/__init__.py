"""Cost of the Langevin term, measured side by side with the base Keras optimizer.

    python -m applications.benchmark                      # full run (about 20 minutes on 2 CPU cores)
    python -m applications.benchmark --skip-update-step   # end to end only
    python -m applications.benchmark --quick              # small sizes, few repeats

Five measurements; those in one process alternate base and Langevin optimizer and repeat:

1. start-up: the first `model.fit` epoch of a 60-layer MLP and of ResNet50, each optimizer in
   a fresh process, so that tracing and compilation are included;
2. the update step alone: `optimizer.apply` on a fixed set of conv-kernel-shaped variables
   (about 1M and 15M parameters), in two conditions on TensorFlow: inside a
   `tf.function(jit_compile=True)` (Keras's fastest Adam) and inside a plain `tf.function`, as
   `model.fit` runs it on CPU; on JAX as a jitted `stateless_apply`;
3. Layer Langevin (fraction 0.3) against full Langevin on the update step;
4. the floor: per element, a pass over memory, the integer hash alone, the Gaussian transform
   alone and the whole noise, on two cores and on one;
5. end to end: `model.fit` seconds per epoch for a deep MLP on the embedded digits and for
   resnet56 on CIFAR-shaped synthetic data, and, on the same models' variables, what bounds
   that ratio per training step.

It prints a table (median time, ratio to the base, min-max) and writes JSON with the machine
(CPU model, cores, versions). The ratio is the median over repeats of (time / base time in the
same repeat): pairing each measurement with the base's neighbouring one cancels the slow
drifts of a shared machine. The ratio of medians is kept in the JSON as `ratio_of_medians`.
Progress lines (`[benchmark] ...`) are printed as each measurement starts and ends.

Modules: `common` (the optimizer pairs, the variables, the compiled runners, the alternating
timer, the table row), one module per measurement (`startup`, `update_steps`, `floors`,
`strategy`, `end_to_end`), `fresh` (a measurement in a fresh process), `report` (the table,
machine, versions, progress) and `run` (the flags and `main`).
"""

from applications.benchmark.run import main, parse_args

__all__ = ["main", "parse_args"]
