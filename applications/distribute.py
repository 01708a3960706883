"""Training on several devices or hosts: `--distribute` of the training scripts.

Modes (`MODES`):

* `off`: one device, as before;
* `mirrored` (TensorFlow): `tf.distribute.MirroredStrategy` over every local GPU, or, without
  GPUs, over the logical CPU devices (`--cpu-devices N` splits the CPU, for tests);
* `multi-worker` (TensorFlow): `tf.distribute.MultiWorkerMirroredStrategy`, one process per
  host, the cluster in `TF_CONFIG`. Keras 3's `model.fit` fails under this strategy before its
  first step (keras-team/keras#20585); `keras_distributed_fit` is the narrow patch that lets
  it run (see there);
* `data-parallel` (JAX): `keras.distribution.DataParallel` over every device; several
  processes when Keras's variables `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` are set;
* `model-parallel` (JAX): `keras.distribution.ModelParallel` on a (data, model) device mesh,
  the kernels (the last axis of every variable named `kernel`) sharded over the `model` axis
  (`--model-shards`, default every device).

`--batch-size` is the global batch (split among the replicas; on JAX a multiple of them, and
an epoch's last batch that they cannot split is computed whole on every device); the
learning-rate and sigma schedules count global steps. The noise of the Langevin optimizers is
a pure function of the optimizer's state (seed variable, step, variable, element), so every
replica adds the same noise to its copy of a variable, and a sharded variable gets the noise
of the unsharded one.

Data placement is the distribution's (`Distribution.place`, which the trainer applies to the
training and test datasets): every process runs the whole seeded input pipeline and reads the
same global batches; under a `tf.distribute` strategy TensorFlow then splits each batch by
elements (`shard_by_data`); under a Keras distribution (JAX) each batch is laid out over the
devices as `fit` reads it (`Distribution.fitting`, `global_batch`); one device reads it as is.
The settings' checks are in `applications.distribute_checks`.

`setup` must run before TensorFlow or JAX does anything else (the multi-worker strategy and
the device split are configured at program start): the scripts call it right after parsing.
"""

import contextlib
import os
import shutil
import tempfile

from applications import _keras_patches
from applications.distribute_checks import (
    JAX_MODES,
    JAX_PROCESS_VARIABLES,
    MODES,
    TENSORFLOW_MODES,
    DistributionError,
    check,
    tf_config_task,
)

__all__ = [
    "JAX_MODES",
    "JAX_PROCESS_VARIABLES",
    "MODES",
    "OFF",
    "TENSORFLOW_MODES",
    "Distribution",
    "DistributionError",
    "batch_shards",
    "check",
    "global_batch",
    "keras_distributed_fit",
    "keras_global_batches",
    "kernel_parallel",
    "setup",
    "shard_by_data",
    "tf_config_task",
]


# ----------------------------------------------------------------------------- data placement


def shard_by_data(dataset):
    """`dataset` split by elements among the workers of a `tf.distribute` strategy (`mirrored`,
    `multi-worker`).

    Every worker runs the whole input pipeline (same seeds, same batches) and keeps its part
    of each global batch, so the replicas together see exactly the batches of one device;
    TensorFlow's default would shard a file-based dataset by files instead.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# ----------------------------------------------------------------------------- the distribution


class Distribution:
    """Where a run's computation and data go, and which process writes the shared outputs.

    `scope()` is entered while the model and optimizer are built; `place` gives a dataset of
    global batches the placement of this mode, `fitting` is the context of `fit`; `is_chief`
    tells whether this process writes the run's log, summary, model and export; `task` names
    the process (its own backup directory); `agree` gathers one integer from every process.
    A `keras_distribution` is told not to split datasets itself (see `place`).
    """

    def __init__(self, mode="off", strategy=None, keras_distribution=None, task=None,
                 is_chief=True, num_processes=1, devices=()):  # fmt: skip
        if mode not in MODES:
            raise DistributionError(f"unknown distribution mode {mode!r}; expected one of {MODES}")
        if keras_distribution is not None:  # the data's placement is ours (`place`)
            keras_distribution.auto_shard_dataset = False
        self.mode = mode
        self.strategy = strategy
        self.keras_distribution = keras_distribution
        self.task = task
        self.is_chief = is_chief
        self.num_processes = num_processes
        self.devices = tuple(devices)

    @property
    def num_replicas(self):
        """Data-parallel replicas (copies of the model, each with its part of the batch)."""
        if self.strategy is not None:
            return self.strategy.num_replicas_in_sync
        if self.keras_distribution is not None:
            return batch_shards(self.keras_distribution)
        return 1

    @contextlib.contextmanager
    def scope(self):
        if self.strategy is not None:
            with self.strategy.scope():
                yield
        elif self.keras_distribution is not None:
            with self.keras_distribution.scope():
                yield
        else:
            yield

    @contextlib.contextmanager
    def fitting(self, model):
        """The context of `model.fit`: under a `tf.distribute` strategy, the patch of
        `keras_distributed_fit`; under a Keras distribution (JAX), its scope and the batches
        of `keras_global_batches`, so that the replicas split each batch."""
        if self.strategy is not None:
            with keras_distributed_fit(model):
                yield
        elif self.keras_distribution is not None:
            with self.keras_distribution.scope(), keras_global_batches():
                yield
        else:
            yield

    def place(self, dataset):
        """`dataset` (a `tf.data.Dataset` of global batches, the same in every process) placed
        as this distribution's `fit` reads it.

        * a `tf.distribute` strategy (`mirrored`, `multi-worker`): `shard_by_data`, each
          worker keeps its part of every global batch, split by elements;
        * a Keras distribution (JAX: `data-parallel`, `model-parallel`): `dataset` as it is,
          read whole by every process, which keeps the part of each batch that its devices
          hold as `fit` lays the batch out (`global_batch`, under `fitting`). Keras's own split
          among processes (rebatch, then every n-th part), which would put the processes on
          different batches after an epoch's last, partial batch, is off (`auto_shard_dataset`
          is set to False when this object is made);
        * one device (`off`): `dataset` as it is.
        """
        if self.strategy is not None:
            return shard_by_data(dataset)
        return dataset

    def check_batch_size(self, batch_size):
        """Raises `DistributionError` unless the global `batch_size` splits evenly among the
        replicas of a Keras distribution (a JAX array is sharded in equal parts; a
        `tf.distribute` strategy splits unevenly and takes any batch size)."""
        if self.keras_distribution is not None and batch_size % self.num_replicas:
            raise DistributionError(
                f"--batch-size {batch_size} must be a multiple of the {self.num_replicas} "
                f"data-parallel replicas of --distribute {self.mode} (the global batch is "
                "split into equal parts)"
            )

    def agree(self, value):
        """The list of `value` (an int) of every process, in process order (one process:
        `[value]`). A collective: every process must call it."""
        if self.num_processes == 1:
            return [int(value)]
        if self.strategy is not None:
            import tensorflow as tf

            local = self.strategy.experimental_distribute_values_from_function(
                lambda context: tf.constant([int(value)], tf.int64)
            )
            gathered = self.strategy.gather(local, axis=0).numpy().tolist()
            per_process = len(gathered) // self.num_processes
            return [int(v) for v in gathered[::per_process]]
        import numpy as np
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(np.array([int(value)], np.int64))
        return [int(v) for v in np.asarray(gathered).ravel()]

    def summary(self):
        """What the run's summary records of the distribution."""
        return {
            "mode": self.mode,
            "replicas": self.num_replicas,
            "processes": self.num_processes,
            "task": self.task,
            "devices": list(self.devices),
        }

    @contextlib.contextmanager
    def private_path(self, path):
        """`path` for the chief; for the other processes a temporary path, deleted after the
        block (they write what the chief writes, in lockstep, and throw it away)."""
        if self.is_chief or path is None:
            yield path
            return
        folder = tempfile.mkdtemp(prefix=f"worker-{self.task}-")
        try:
            yield os.path.join(folder, os.path.basename(os.path.normpath(path)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)


OFF = Distribution()


# ----------------------------------------------------------------------------- setup


def setup(mode="off", cpu_devices=None, model_shards=None, environ=None):
    """The `Distribution` of `mode` for this process; call it before TensorFlow or JAX run
    anything. Raises `DistributionError` for a setting that cannot run here."""
    import keras

    environ = os.environ if environ is None else environ
    backend = keras.backend.backend()
    check(mode, backend, environ, cpu_devices, model_shards)
    if mode == "off":
        return OFF
    if mode in TENSORFLOW_MODES:
        return _setup_tensorflow(mode, cpu_devices, environ)
    return _setup_jax(mode, cpu_devices, model_shards, environ)


def _setup_tensorflow(mode, cpu_devices, environ):
    import tensorflow as tf

    if cpu_devices is not None:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
    if mode == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Distribution(mode, strategy=strategy, task="chief", devices=devices)
    task_type, index, is_chief = tf_config_task(environ)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Distribution(
        mode,
        strategy=strategy,
        task=f"{task_type}-{index}",
        is_chief=is_chief,
        num_processes=_cluster_size(strategy),
        devices=list(strategy.extended.worker_devices),
    )


def _cluster_size(strategy):
    """The processes of a multi-worker strategy: its cluster's chief and workers."""
    cluster = strategy.cluster_resolver.cluster_spec()
    return sum(cluster.num_tasks(job) for job in ("chief", "worker") if job in cluster.jobs)


def _setup_jax(mode, cpu_devices, model_shards, environ):
    import jax
    import keras

    if cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", cpu_devices)
    if all(environ.get(name) for name in JAX_PROCESS_VARIABLES):
        # Collectives between the processes' CPU devices (tests, CPU hosts); nothing may ask
        # JAX for its devices before `initialize`.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    if mode == "data-parallel":
        distribution = keras.distribution.DataParallel(devices=devices)
    else:
        shards = model_shards or len(devices)
        if len(devices) % shards:
            raise DistributionError(
                f"--model-shards {shards} must divide the number of devices ({len(devices)})"
            )
        mesh = keras.distribution.DeviceMesh(
            (len(devices) // shards, shards), ["batch", "model"], devices
        )
        distribution = kernel_parallel(mesh)
    index = jax.process_index()
    return Distribution(
        mode,
        keras_distribution=distribution,
        task=f"process-{index}",
        is_chief=index == 0,
        num_processes=jax.process_count(),
        devices=devices,
    )


def kernel_parallel(mesh):
    """`keras.distribution.ModelParallel` on `mesh` that shards every kernel over `model`.

    A variable whose path ends in `kernel` (Dense, Conv...) is sharded along its last axis
    (output features or filters) over the mesh's `model` axis when that axis divides it;
    every other variable is replicated, and the batch is split over the `batch` axis. Keras's
    `LayoutMap` maps a path pattern to one layout of one rank; the kernels of a model have
    several ranks (2 for Dense, 4 for Conv2D), hence a layout chosen per variable here. The
    optimizer's slots take their variable's layout.
    """
    import keras

    class KernelParallel(keras.distribution.ModelParallel):
        def get_variable_layout(self, variable):
            layout = _keras_patches.assigned_layout(variable)
            if layout is not None:
                return layout
            shape = tuple(variable.shape)
            shards = self.device_mesh.shape[1]
            if variable.path.endswith("kernel") and shape and shape[-1] % shards == 0:
                axes = (None,) * (len(shape) - 1) + ("model",)
                return keras.distribution.TensorLayout(axes, self.device_mesh)
            return super().get_variable_layout(variable)

    return KernelParallel(layout_map=keras.distribution.LayoutMap(mesh), batch_dim_name="batch")


# ----------------------------------------------------------------------------- the patches


def batch_shards(keras_distribution):
    """The parts a batch is split into: the size of the device mesh's batch axis."""
    mesh = keras_distribution.device_mesh
    return int(mesh.shape[mesh.axis_names.index(keras_distribution.batch_dim_name)])


def global_batch(array, keras_distribution):
    """`array` (a whole batch, the same in every process) as one JAX array over the mesh:
    split along the batch axis when it divides evenly, else (an epoch's last, partial batch)
    whole on every device. Each process puts on its own devices only their part."""
    import jax

    if array is None:
        return None
    sharding = keras_distribution.get_data_layout(array.shape).backend_layout
    if array.shape[0] % batch_shards(keras_distribution):
        sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def keras_global_batches():
    """Lets Keras 3's JAX `fit` and `evaluate`, under a Keras distribution, take every batch
    of the data, the partial one included, split among the replicas, each laid out by its own
    size with `global_batch` from the whole batch that every process reads (the patch
    `_keras_patches.jax_batches_by_size`, on either form of Keras's JAX trainer)."""
    return _keras_patches.jax_batches_by_size(lambda array, dist: global_batch(array, dist))


def keras_distributed_fit(model):
    """Lets Keras 3's `model.fit` run under `MultiWorkerMirroredStrategy`, and keeps the data
    order of one device under any `tf.distribute` strategy (the patch
    `_keras_patches.multi_worker_fit`: the metrics built from the dataset's element spec, no
    batch drawn; scalar logs reduced across workers)."""
    return _keras_patches.multi_worker_fit(model)
