"""Quality of the counter-based noise: law, independence, reproducibility, dtypes."""

import math

import keras
import numpy as np
import pytest
from keras import ops
from scipy import special, stats

from keras_langevin import noise

pytestmark = pytest.mark.multibackend

N = 1_000_000


def _key(seed=3, step=0, index=0):
    return noise.step_key(ops.convert_to_tensor(seed, "int32"), ops.convert_to_tensor(step), index)


def _draw(kind="gaussian", n=N, **key):
    return ops.convert_to_numpy(noise.sample(kind, (n,), _key(**key))).astype("float64")


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_gaussian_passes_kolmogorov_smirnov():
    z = _draw()
    # 1.95 / sqrt(n) is the 0.1% critical value of the KS statistic.
    assert stats.kstest(z, "norm").statistic < 1.95 / math.sqrt(N)
    assert abs(z.mean()) < 5 / math.sqrt(N)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / N)


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_no_correlation_between_steps_variables_elements(kind):
    bound = 5 / math.sqrt(N)  # 5 standard errors of a correlation of n independent pairs
    base = _draw(kind)
    assert abs(_corr(base, _draw(kind, step=1))) < bound
    assert abs(_corr(base, _draw(kind, index=1))) < bound
    assert abs(_corr(base, _draw(kind, seed=4))) < bound
    assert abs(_corr(base[:-1], base[1:])) < bound
    # A shifted window of the next step: no overlap of counter streams.
    assert abs(_corr(base[1:], _draw(kind, step=1)[:-1])) < bound


def test_rademacher_is_plus_minus_one_with_mean_zero():
    r = _draw("rademacher")
    assert set(np.unique(r)) == {-1.0, 1.0}
    assert abs(r.mean()) < 5 / math.sqrt(N)
    assert r.var() == pytest.approx(1.0, abs=5 / math.sqrt(N))


# The first draws for seed 3, step 7, variable 0, recorded on TensorFlow and on JAX: the noise
# is a fixed function of (seed, step, variable, element), on every backend and release. A change
# to the counter hash or to the transforms changes them, and the noise of a resumed run with it.
PINNED_BITS = [1351268117, 364971769, 1143734398, 1347092839, 394203147, 720855062]
PINNED_GAUSSIAN = [-0.482806444, -1.372354388, -0.624052942, -0.485546350, -1.329857707]
PINNED_RADEMACHER = [1, 1, 1, 1, 1, 1, -1, -1, -1, 1, 1, 1, -1, -1, 1, 1, 1, 1, -1, 1]


def test_same_key_gives_the_pinned_noise_whatever_the_shape_drawn():
    key = _key(step=7)
    assert ops.convert_to_numpy(noise.random_bits((6,), key)).tolist() == PINNED_BITS
    # Element i depends on its counter only: a longer or two-dimensional draw starts the same.
    for shape in ((5,), (1000,), (2, 500)):
        gaussian = ops.convert_to_numpy(noise.sample("gaussian", shape, key)).ravel()
        # rtol: float32 rounding of the transform, which differs by 3e-8 between shapes on TF.
        np.testing.assert_allclose(gaussian[:5], PINNED_GAUSSIAN, rtol=1e-6)
        rademacher = ops.convert_to_numpy(noise.sample("rademacher", shape, key)).ravel()
        np.testing.assert_array_equal(rademacher[:5], PINNED_RADEMACHER[:5])
    np.testing.assert_array_equal(_draw("rademacher", n=20, step=7), PINNED_RADEMACHER)


def test_extreme_bits_map_to_finite_symmetric_normals():
    bits = ops.convert_to_tensor(np.array([0, 511, 2**31, 2**32 - 1], dtype="uint32"))
    z = ops.convert_to_numpy(noise.normal_from_bits(bits))
    assert np.all(np.isfinite(z))
    assert z[0] == -z[-1] and 5.0 < z[-1] < 5.6


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_noise_drawn_in_the_requested_dtype(dtype):
    for kind in noise.NOISE_TYPES:
        sample = noise.sample(kind, (4, 3), _key(), dtype)
        assert keras.backend.standardize_dtype(sample.dtype) == dtype
        assert np.all(np.isfinite(ops.convert_to_numpy(ops.cast(sample, "float32"))))


def test_unknown_noise_type_is_rejected():
    with pytest.raises(ValueError, match="noise='uniform'"):
        noise.validate_noise("uniform")


def test_normal_quantile_matches_scipy():
    u = np.linspace(-1 + 2**-22, 1 - 2**-22, 100_001).astype("float32")
    ours = ops.convert_to_numpy(noise._sqrt2_erfinv(ops.convert_to_tensor(u)))
    reference = math.sqrt(2) * special.erfinv(u.astype("float64"))
    assert np.max(np.abs(ours - reference)) < 2e-6


@pytest.mark.parametrize("kind", noise.NOISE_TYPES)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_drawing_many_variables_at_once_gives_each_its_own_noise_bit_for_bit(kind, dtype):
    """The grouped draw (one computation per shape) and a tensor index (one compiled update
    per shape) are the same pure function of (seed, step, variable, element)."""
    seed = ops.convert_to_tensor(-5, "int32")  # seeds >= 2**31 are stored as negative int32
    step = ops.convert_to_tensor(123456)
    shape = (3, 5, 4)
    indices = [0, 1, 7, 2**20 + 3]
    many = ops.convert_to_numpy(noise.sample_many(kind, shape, seed, step, indices, dtype))
    assert many.shape == (len(indices), *shape)
    for row, index in zip(many, indices):
        one = ops.convert_to_numpy(
            noise.sample(kind, shape, noise.step_key(seed, step, index), dtype)
        )
        tensor_index = ops.convert_to_tensor(index, "int32")
        by_tensor = ops.convert_to_numpy(
            noise.sample(kind, shape, noise.step_key(seed, step, tensor_index), dtype)
        )
        np.testing.assert_array_equal(row, one)
        np.testing.assert_array_equal(by_tensor, one)
    assert not np.array_equal(many[0], many[1])
