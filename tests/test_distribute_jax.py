"""JAX, keras.distribution: several processes (DataParallel) and a sharded kernel (ModelParallel).

* two processes with one CPU device each (gloo collectives, Keras's KERAS_DISTRIBUTION_*
  variables on 127.0.0.1), `model.fit` with LAdam, a fixed seed and seed=None with Python's
  `random` seeded differently per process: weights and optimizer state bitwise identical
  across processes, and the noise applied;
* one process with two CPU devices, a kernel sharded over both by
  `applications.distribute.kernel_parallel`: the noise of a zero-gradient step (inside one
  jitted update) is, bit for bit, the noise of the unsharded kernel.
"""

import json
import sys
import textwrap

import numpy as np
import pytest
from distribute_helpers import Processes, env, free_ports

pytestmark = pytest.mark.slow  # subprocesses on the JAX backend, whatever this one runs

PROCESS_SCRIPT = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras

    keras.distribution.initialize()  # from KERAS_DISTRIBUTION_JOB_ADDRESSES, ...
    import tensorflow as tf
    import keras_langevin as kl

    index = jax.process_index()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8)).astype("float32")
    y = rng.integers(0, 3, 128)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # the global batch
    out = {"processes": np.array(jax.process_count())}
    for name, sigma, seed in (("seed7", 0.05, 7), ("seedNone", 0.05, None), ("plain", 0.0, 7)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)),
                                  keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        random.seed(1000 + index)  # seed=None draws from here: a different seed per process
        model.compile(kl.LAdam(1e-2, sigma=sigma, seed=seed), "sparse_categorical_crossentropy")
        model.fit(dataset, epochs=2, verbose=0)
        for k, w in enumerate(model.get_weights()):
            out[f"{name}/weight{k}"] = w
        for v in model.optimizer.variables:
            out[f"{name}/optimizer/{v.path}"] = keras.ops.convert_to_numpy(v)
    np.savez(sys.argv[1], **out)
    """
)


def test_two_processes_add_the_same_noise(tmp_path):
    script = tmp_path / "process.py"
    script.write_text(PROCESS_SCRIPT)
    ports = free_ports(2)
    addresses = ",".join(f"127.0.0.1:{port}" for port in ports)
    with Processes() as processes:
        started = [
            processes.start(
                [sys.executable, str(script), str(tmp_path / f"process{index}.npz")],
                tmp_path / f"process{index}.log",
                env(
                    "jax",
                    KERAS_DISTRIBUTION_JOB_ADDRESSES=addresses,
                    KERAS_DISTRIBUTION_NUM_PROCESSES=2,
                    KERAS_DISTRIBUTION_PROCESS_ID=index,
                ),
            )
            for index in range(2)
        ]
        for process in started:
            processes.finish(process)
    results = []
    for index in range(2):
        with np.load(tmp_path / f"process{index}.npz") as data:
            results.append(dict(data))
    first, second = results
    assert int(first["processes"]) == 2
    assert set(first) == set(second)
    for key, value in first.items():  # weights, moments, step, seed: bit for bit
        assert value.tobytes() == second[key].tobytes(), key
    steps = [value for key, value in first.items() if key.endswith("/iteration")]
    assert steps and all(int(step) == 8 for step in steps)  # 2 epochs of 4 global batches
    for run in ("seed7", "seedNone"):
        assert not np.allclose(first[f"{run}/weight0"], first["plain/weight0"])
    assert not np.array_equal(first["seed7/weight0"], first["seedNone/weight0"])


SHARDED_SCRIPT = textwrap.dedent(
    """
    import contextlib, json, sys
    import jax

    jax.config.update("jax_num_cpu_devices", 2)
    import keras
    import numpy as np
    import keras_langevin as kl
    from applications import distribute

    def zero_gradient_step(kernel_value, distribution):
        keras.utils.set_random_seed(0)
        with distribution.scope() if distribution else contextlib.nullcontext():
            layer = keras.layers.Dense(64, name="dense")
            layer.build((None, 24))
            layer.kernel.assign(kernel_value)
            optimizer = kl.LSGD(0.1, sigma=1.0, seed=5)
            optimizer.build([layer.kernel])
        kernel = layer.kernel.value
        update = jax.jit(optimizer.stateless_apply)
        (new_kernel,), _ = update(
            [v.value for v in optimizer.variables], [jax.numpy.zeros_like(kernel)], [kernel]
        )
        noise = np.asarray(new_kernel) - np.asarray(kernel)
        spec = lambda a: str(getattr(a.sharding, "spec", "single device"))
        return noise, spec(kernel), spec(new_kernel)

    devices = keras.distribution.list_devices()
    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)
    kernel = np.random.default_rng(0).standard_normal((24, 64)).astype("float32")
    sharded, spec, new_spec = zero_gradient_step(kernel, distribute.kernel_parallel(mesh))
    plain, plain_spec, _ = zero_gradient_step(kernel, None)
    print("RESULT" + json.dumps({
        "devices": len(devices), "spec": spec, "new_spec": new_spec, "plain_spec": plain_spec,
        "equal": sharded.tobytes() == plain.tobytes(), "std": float(plain.std()),
        "expected_std": float(np.sqrt(0.1)),
    }))
    """
)


def test_a_sharded_kernel_gets_the_noise_of_the_unsharded_one(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    with Processes() as processes:
        process = processes.start(
            [sys.executable, str(script)], tmp_path / "sharded.log", env("jax")
        )
        output = processes.finish(process)
    line = next(ln for ln in output.splitlines() if ln.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    assert result["devices"] == 2
    assert "model" in result["spec"] and "model" in result["new_spec"], result  # sharded
    assert "model" not in result["plain_spec"]
    assert result["equal"]  # bit for bit
    # sigma * sqrt(lr) * xi with 1536 draws: the standard deviation within a few percent
    assert result["std"] == pytest.approx(result["expected_std"], rel=0.1)
