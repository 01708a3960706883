"""Counter-based random numbers for the Langevin term.

Every draw is a pure function of ``(seed, step, variable index, element index)``:

* nothing but the optimizer's own variables (a seed variable and ``iterations``) carries the
  random state, so the noise is fresh at every step inside a jitted JAX train step, resumes
  exactly after a checkpoint, and is identical on every replica of a mirrored variable;
* the generator is a few integer multiplies and shifts that XLA fuses into the update itself,
  which is far cheaper on CPU than the backends' general-purpose generators.

The bits come from two rounds of a 32-bit integer finalizer (multiply/xor-shift, constants of
Wellons' "lowbias32") over the element counter, keyed by two words derived from the seed, the
step and the variable. Gaussian noise maps 23 of those bits to a uniform number on the open
interval (-1, 1), at most 1 - 2^-23 in absolute value, and then through ``sqrt(2) * erfinv``:
an exact inverse-CDF transform, with the tails truncated at about 5.3 standard deviations by
the 23-bit resolution (probability 1.2e-7). One bit more would not do: TensorFlow's
non-XLA erfinv evaluates the normal quantile at (1 + u) / 2, which float32 rounds to exactly 1
(an infinite result) for u = 1 - 2^-24. Rademacher noise takes the
top bit: +-1 with probability 1/2, the "simplified weak Euler scheme" that matches the first
three moments of a Gaussian.
"""

import numpy as np
from keras import ops

GAUSSIAN = "gaussian"
RADEMACHER = "rademacher"
NOISE_TYPES = (GAUSSIAN, RADEMACHER)

_MULTIPLIER_1 = 0x7FEB352D
_MULTIPLIER_2 = 0x846CA68B
_GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: spreads consecutive steps over the key space
_VARIABLE_STRIDE = 0x85EBCA6B
_MANTISSA_BITS = 23
_HALF_RANGE = float(2 ** (_MANTISSA_BITS - 1))


def validate_noise(noise):
    """Returns `noise` if it names a supported noise type, else raises ValueError."""
    if noise not in NOISE_TYPES:
        raise ValueError(
            f"Argument `noise` must be one of {NOISE_TYPES}. Received: noise={noise!r}"
        )
    return noise


def _u32(value):
    return ops.convert_to_tensor(value & 0xFFFFFFFF, dtype="uint32")


def _shift_xor(x, bits):
    return ops.bitwise_xor(x, ops.right_shift(x, _u32(bits)))


def hash_uint32(x):
    """A bijective avalanche hash of uint32 values (elementwise)."""
    x = ops.multiply(_shift_xor(x, 16), _u32(_MULTIPLIER_1))
    x = ops.multiply(_shift_xor(x, 15), _u32(_MULTIPLIER_2))
    return _shift_xor(x, 16)


def step_key(seed, step, index):
    """The two uint32 key words of one variable at one step.

    Args:
        seed: integer scalar tensor (the optimizer's seed variable).
        step: integer scalar tensor (the optimizer's raw iteration counter).
        index: the variable's position in the optimizer's variable list: a Python int or an
            integer scalar tensor (the same key either way).
    """
    if isinstance(index, int):
        offset = _u32(index * _VARIABLE_STRIDE)
    else:  # uint32 arithmetic wraps around as the masked Python product does
        offset = ops.multiply(ops.cast(index, "uint32"), _u32(_VARIABLE_STRIDE))
    return _keys(seed, step, offset)


def step_keys(seed, step, indices):
    """`step_key` of several variables at once: two uint32 vectors, one entry per index.

    Entry `j` equals `step_key(seed, step, indices[j])`, bit for bit.
    """
    offsets = np.array([(i * _VARIABLE_STRIDE) & 0xFFFFFFFF for i in indices], dtype=np.uint32)
    return _keys(seed, step, ops.convert_to_tensor(offsets))


def _keys(seed, step, offset):
    """The key words from the seed, the step and the variable's uint32 offset (any shape)."""
    seed = ops.cast(seed, "uint32")
    step = ops.cast(step, "uint32")
    word = ops.add(ops.multiply(step, _u32(_GOLDEN)), offset)
    key_1 = hash_uint32(ops.bitwise_xor(hash_uint32(word), seed))
    key_2 = hash_uint32(ops.add(key_1, _u32(_GOLDEN)))
    return key_1, key_2


def _counter(shape):
    size = 1
    for dim in shape:
        size *= int(dim)
    return ops.cast(ops.arange(size, dtype="int32"), "uint32")


def _bits(counter, key_1, key_2):
    return hash_uint32(ops.add(hash_uint32(ops.bitwise_xor(counter, key_1)), key_2))


def random_bits(shape, key):
    """uint32 random bits of the given static shape, a pure function of `key`."""
    return ops.reshape(_bits(_counter(shape), *key), shape)


def random_bits_many(shape, keys):
    """uint32 bits of shape `(n, *shape)`: row `j` is `random_bits(shape, key_j)` for the
    `j`-th entries of the two key vectors (as `step_keys` returns them).

    One elementwise computation for all `n` variables of one shape: XLA compiles the generator
    once per distinct shape instead of once per variable.
    """
    key_1, key_2 = (ops.expand_dims(k, 1) for k in keys)
    bits = _bits(ops.expand_dims(_counter(shape), 0), key_1, key_2)
    return ops.reshape(bits, (-1, *(int(d) for d in shape)))


def _compute_dtype(dtype):
    # 16-bit floats cannot hold a 23-bit uniform; draw in float32 and cast the result.
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def standard_normal(shape, key, dtype="float32"):
    """N(0, 1) samples: the inverse-CDF transform of a 23-bit uniform."""
    return normal_from_bits(random_bits(shape, key), dtype)


def normal_from_bits(bits, dtype="float32"):
    """Maps uint32 random bits to N(0, 1) samples (finite for every input)."""
    compute_dtype = _compute_dtype(dtype)
    high = ops.right_shift(bits, _u32(32 - _MANTISSA_BITS))
    # (k - (2^22 - 1/2)) / 2^22 for k in [0, 2^23): symmetric, exact in float32, |u| < 1.
    uniform = ops.multiply(
        ops.subtract(ops.cast(high, compute_dtype), _HALF_RANGE - 0.5), 1.0 / _HALF_RANGE
    )
    return ops.cast(_sqrt2_erfinv(uniform), dtype)


# Giles (2010), "Approximating the erfinv function", single-precision branches (relative error
# about 4e-7 on erfinv), here pre-multiplied by sqrt(2) so that they give the normal quantile.
_CENTRAL = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_TAIL = (
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
)


def _horner(coefficients, x):
    result = coefficients[0] * 2.0**0.5
    for c in coefficients[1:]:
        result = ops.add(ops.multiply(result, x), c * 2.0**0.5)
    return result


def _sqrt2_erfinv(u):
    """sqrt(2) * erfinv(u) for |u| < 1: both of Giles' branches, one select.

    Cheaper on CPU than the backends' erfinv (one log, no special cases for |u| = 1, which
    the 23-bit uniform never reaches).
    """
    w = ops.negative(ops.log(ops.multiply(ops.subtract(1.0, u), ops.add(1.0, u))))
    central = _horner(_CENTRAL, ops.subtract(w, 2.5))
    tail = _horner(_TAIL, ops.subtract(ops.sqrt(w), 3.0))
    return ops.multiply(ops.where(w < 5.0, central, tail), u)


def rademacher(shape, key, dtype="float32"):
    """+-1 with probability 1/2 each."""
    return rademacher_from_bits(random_bits(shape, key), dtype)


def rademacher_from_bits(bits, dtype="float32"):
    """Maps uint32 random bits to +-1 (the top bit)."""
    sign_bit = ops.right_shift(bits, _u32(31))
    return ops.subtract(1.0, ops.multiply(ops.cast(sign_bit, dtype), 2.0))


_SAMPLERS = {GAUSSIAN: standard_normal, RADEMACHER: rademacher}
_TRANSFORMS = {GAUSSIAN: normal_from_bits, RADEMACHER: rademacher_from_bits}


def sample(noise, shape, key, dtype="float32"):
    """Draws standard noise of the named type (zero mean, unit variance)."""
    return _SAMPLERS[noise](shape, key, dtype)


def sample_many(noise, shape, seed, step, indices, dtype="float32"):
    """The noise of several variables of one shape: shape `(len(indices), *shape)`, row `j`
    equal, bit for bit, to `sample(noise, shape, step_key(seed, step, indices[j]), dtype)`."""
    bits = random_bits_many(shape, step_keys(seed, step, indices))
    return _TRANSFORMS[noise](bits, dtype)
