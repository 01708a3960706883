"""Every use of Keras internals by the harness (`applications/`), in one place, each guarded.

Whatever in `applications/` reaches below Keras's public API (a `keras.src` module, an
underscore attribute of a Keras object, a Keras function replaced for a while) does it here.
Every use checks that its target exists and raises `KerasInternalsError`, naming the installed
Keras version, when it does not: a Keras release that renames something fails loudly at the
first use instead of silently running without the patch. A patch whose target differs between
Keras releases finds which form the installed Keras has by looking at it (not at its version
number) and fails loudly when it finds none; `tests/applications/test_keras_patches.py` checks each patch on the installed
Keras (applied, its behaviour observed, loud when its target is gone) and each form on stand-ins.

Sections (add a new one at the end, under its own banner):

1. Guards: `KerasInternalsError`, `internal_module`, `internal_attribute`, `replaced`.
2. tf.distribute: `multi_worker_fit` (Keras's TensorFlow trainer under
   `MultiWorkerMirroredStrategy`).
3. keras.distribution on JAX: `jax_batch_form`, `jax_batches_by_size` (Keras's JAX epoch
   iterator), `assigned_layout` (a variable's layout).
"""

import contextlib
import importlib

import keras

# ----------------------------------------------------------------------------- 1. guards


class KerasInternalsError(RuntimeError):
    """A Keras internal that the harness relies on is missing from the installed Keras."""


def keras_release(version=None):
    """`(major, minor)` of `version` (default: the installed Keras); a development release
    counts as its release (`3.16.0.dev2026...` is `(3, 16)`)."""
    from packaging.version import Version

    return Version(keras.__version__ if version is None else version).release[:2]


def _missing(what, needed_for):
    return KerasInternalsError(
        f"{needed_for} needs {what}, which Keras {keras.__version__} does not have; "
        "applications/_keras_patches.py must be updated for this Keras version"
    )


def internal_module(name, needed_for):
    """The Keras module `name` (e.g. `keras.src.backend.jax.trainer`); `KerasInternalsError`
    if this Keras has no such module. `needed_for` says what the harness uses it for."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise _missing(f"the module {name}", needed_for) from error


def internal_attribute(owner, name, needed_for):
    """`owner.name` (a Keras module, class or object); `KerasInternalsError` if missing."""
    if not hasattr(owner, name):
        label = getattr(owner, "__name__", type(owner).__name__)
        raise _missing(f"{label}.{name}", needed_for)
    return getattr(owner, name)


@contextlib.contextmanager
def replaced(owner, name, replacement, needed_for):
    """Replaces `owner.name` by `replacement` for the block and restores it after (deletes it
    again if it was inherited rather than set on `owner`). Yields the original; raises
    `KerasInternalsError` if `owner` has no `name` to replace."""
    original = internal_attribute(owner, name, needed_for)
    own = name in vars(owner)
    setattr(owner, name, replacement)
    try:
        yield original
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


# ----------------------------------------------------------------------------- 2. tf.distribute

_TF_TRAINER = "keras.src.backend.tensorflow.trainer"
_MULTI_WORKER_FIT = "model.fit under MultiWorkerMirroredStrategy (applications.distribute)"


@contextlib.contextmanager
def multi_worker_fit(model):
    """Lets Keras 3's `model.fit` run under `MultiWorkerMirroredStrategy`, and keeps the data
    order of one device under any `tf.distribute` strategy (every Keras release so far, 3.10 to
    3.16.dev: keras-team/keras#20585, tensorflow/tensorflow#72388).

    Two steps of Keras's TensorFlow trainer fail under the multi-worker strategy; this patch
    replaces exactly those two, for `model` and the duration of the block:

    * `_maybe_symbolic_build` takes a batch of the distributed dataset and reduces it across
      workers (`strategy.reduce("MEAN", batch, axis=None)`), which fails on the per-replica
      values ("Attempt to convert a value (PerReplica...)"). It only needs the batch's shapes
      and dtypes to build the metrics, so the patched step builds from the dataset's
      `element_spec`: no batch is drawn, nothing is reduced. Under every strategy this also
      keeps the training stream of one device: Keras's step opens an iterator and draws a
      batch before training opens another, and a dataset reshuffled at each iteration then
      trains on its second shuffle.
    * the module function `reduce_per_replica` reduces the step's logs (scalar metric results)
      with `strategy.reduce("MEAN", value, axis=0)`, an error on a scalar. The patched function
      reduces scalars with `axis=None` (the mean over the replicas, what `MirroredStrategy`'s
      logs hold) and leaves every other case to Keras.
    """
    tf_trainer = internal_module(_TF_TRAINER, _MULTI_WORKER_FIT)
    is_multi_worker = internal_attribute(
        tf_trainer, "_collective_all_reduce_multi_worker", _MULTI_WORKER_FIT
    )
    symbolic_build = internal_attribute(model, "_symbolic_build", _MULTI_WORKER_FIT)
    internal_attribute(model, "_maybe_symbolic_build", _MULTI_WORKER_FIT)
    original_reduce = internal_attribute(tf_trainer, "reduce_per_replica", _MULTI_WORKER_FIT)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            if getattr(value, "shape", None) is not None and value.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy, reduction)

        return keras.tree.map_structure(reduce, values)

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            adapter = internal_attribute(iterator, "data_adapter", _MULTI_WORKER_FIT)
            spec = adapter.get_tf_dataset().element_spec
            data_batch = keras.tree.map_structure(
                lambda s: keras.KerasTensor(tuple(s.shape), s.dtype.name), spec
            )
        with model.distribute_strategy.scope():
            symbolic_build(data_batch=data_batch)

    with replaced(tf_trainer, "reduce_per_replica", reduce_per_replica, _MULTI_WORKER_FIT):
        object.__setattr__(model, "_maybe_symbolic_build", maybe_symbolic_build)
        try:
            yield
        finally:
            object.__delattr__(model, "_maybe_symbolic_build")


# ----------------------------------------------------------------------------- 3. JAX distribution

_JAX_TRAINER = "keras.src.backend.jax.trainer"
_BATCHES_BY_SIZE = "JAX data parallelism with partial batches (applications.distribute)"
#: The two ways Keras's JAX epoch iterator lays out the batches of a distributed epoch.
FIRST_BATCH, EACH_BATCH = "first-batch", "each-batch"


def _names_used(function):
    """The global and attribute names that `function` (and the functions it defines) use."""
    names, codes = set(), [function.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return names


def jax_batch_form(jax_trainer=None):
    """How the installed Keras's JAX trainer (or the module `jax_trainer`) lays out the batches
    of a distributed epoch, read from the code itself:

    * `FIRST_BATCH` (Keras 3.10-3.15): `JAXEpochIterator._get_iterator` calls
      `_get_distributed_iterator`, which gives every batch the layout of the first;
    * `EACH_BATCH` (keras-nightly 3.16): `_get_iterator` passes each batch to the module's
      `_distribute_data`, which lays it out by its own shape.

    Raises `KerasInternalsError`, naming the Keras version, when it finds neither form.
    """
    if jax_trainer is None:
        jax_trainer = internal_module(_JAX_TRAINER, _BATCHES_BY_SIZE)
    iterator_class = internal_attribute(jax_trainer, "JAXEpochIterator", _BATCHES_BY_SIZE)
    used = _names_used(internal_attribute(iterator_class, "_get_iterator", _BATCHES_BY_SIZE))
    if hasattr(iterator_class, "_get_distributed_iterator"):
        if "_get_distributed_iterator" in used:
            return FIRST_BATCH
    elif "_distribute_data" in used and callable(getattr(jax_trainer, "_distribute_data", None)):
        return EACH_BATCH
    raise _missing(
        "JAXEpochIterator._get_iterator calling either _get_distributed_iterator (Keras "
        "3.10-3.15) or the module's _distribute_data (Keras 3.16)",
        _BATCHES_BY_SIZE,
    )


@contextlib.contextmanager
def jax_batches_by_size(lay_out, jax_trainer=None):
    """Lets Keras's JAX `fit` and `evaluate`, under a Keras distribution, place each batch with
    `lay_out(array, distribution)` (a batch of the data as read, the same in every process ->
    one global JAX array), for the duration of the block.

    Keras lays out a batch with its batch axis split over the mesh and each process's rows
    taken as its own part. An epoch's last batch, of another size, fails unless the replicas
    divide it ("IndivisibleError": on Keras 3.10-3.15 every batch gets the first batch's
    layout; on keras-nightly 3.16, which lays out each batch by its own shape, a partial batch
    that the replicas cannot split still fails), and a process that reads the whole batch is
    not Keras's process-local part. What is replaced depends on `jax_batch_form`: on
    `FIRST_BATCH` the epoch iterator's `_get_distributed_iterator`; on `EACH_BATCH` the
    module's `_distribute_data` (which then calls `lay_out` whenever a Keras distribution is
    set, and leaves a stacked batch of `steps_per_execution > 1` to Keras).
    """
    if jax_trainer is None:
        jax_trainer = internal_module(_JAX_TRAINER, _BATCHES_BY_SIZE)
    if jax_batch_form(jax_trainer) == FIRST_BATCH:

        def distributed_iterator(self, distribution):
            adapter = internal_attribute(self, "data_adapter", _BATCHES_BY_SIZE)
            for data in adapter.get_jax_iterator():
                yield keras.tree.map_structure(lambda a: lay_out(a, distribution), data)

        owner, name = jax_trainer.JAXEpochIterator, "_get_distributed_iterator"
        replacement = distributed_iterator
    else:
        original = jax_trainer._distribute_data

        def distribute_data(data, *args, **kwargs):
            # Keras's signature: (data, layouts=None, is_super_batch=False)
            stacked = kwargs.get("is_super_batch", len(args) > 1 and args[1])
            distribution = keras.distribution.distribution()
            if distribution is None or stacked:
                return original(data, *args, **kwargs)
            return keras.tree.map_structure(lambda a: lay_out(a, distribution), data)

        owner, name, replacement = jax_trainer, "_distribute_data", distribute_data
    with replaced(owner, name, replacement, _BATCHES_BY_SIZE):
        yield


def assigned_layout(variable):
    """The layout already assigned to a Keras `variable` (`None` if none): what Keras's own
    distributions return first from `get_variable_layout`."""
    return internal_attribute(variable, "_layout", "a variable layout (kernel_parallel)")


# ----------------------------------------------------------------------------- 4. run engine
# (applications/trainer.py and applications/backup.py: building a compiled model, resuming fit)

_COMPILED_STATE = "building the compiled loss and metrics from shapes (applications.trainer)"
_INITIAL_EPOCH = "resuming model.fit at a restored epoch (applications.backup)"


def build_compiled_state(model, element_spec):
    """Builds the compiled loss and metrics of `model` from `element_spec` (a `tf.data` element
    spec) without drawing a batch.

    Keras builds them in `fit` from a batch that it draws from a first iterator over the
    training data before training opens a second one, so that a stream reshuffled at each pass
    trains on its later passes. `Model._symbolic_build(data_batch=...)` is the step that builds
    them from a batch; here it gets symbolic tensors of the spec's shapes and dtypes, and `fit`
    finds everything built.
    """
    symbolic_build = internal_attribute(model, "_symbolic_build", _COMPILED_STATE)
    batch = keras.tree.map_structure(
        lambda spec: keras.KerasTensor(tuple(spec.shape), spec.dtype.name), element_spec
    )
    symbolic_build(data_batch=batch)


def set_initial_epoch(model, epoch):
    """Makes the `model.fit` that is starting begin at `epoch`: what Keras's own
    `BackupAndRestore` does after restoring (`fit` reads `model._initial_epoch` after its
    callbacks' `on_train_begin`)."""
    internal_attribute(model, "_initial_epoch", _INITIAL_EPOCH)
    model._initial_epoch = epoch
