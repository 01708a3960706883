"""The two problems of the reference posterior: their data, parameters, likelihood and prior.

Data: scikit-learn's 8x8 digits (1,797 images, pixel values / 16 in [0, 1], 64 features, some
of them blank in every image), one fixed split: `TRAIN_SIZE` training examples drawn with
`SPLIT_SEED`, the rest for testing.

Problems (`PROBLEMS`), both with the prior N(0, s^2) on every weight, kernels and biases:

    softmax   Bayesian softmax regression, 64 -> 10 (650 weights; log-concave)
    mlp       one hidden layer of `HIDDEN` tanh units, 64 -> 12 -> 10 (910 weights; multimodal)

The parameters are one flat vector `theta`, laid out as Keras lays out the model's weights
(each Dense layer's kernel, row-major, then its bias), so that a NUTS draw and a Keras model's
weights are the same numbers. The negative log posterior is

    U(theta) = -sum_i log softmax(f(x_i; theta))[y_i] + sum_j theta_j^2 / (2 s^2)

(+ const), and a Keras model with the mean cross-entropy loss and
`keras_langevin.sampling.gaussian_prior(s, N)` on every kernel and bias has loss U / N.
"""

import dataclasses
import itertools

import numpy as np

TRAIN_SIZE = 1000
SPLIT_SEED = 0
HIDDEN = 12
NUM_CLASSES = 10
PROBLEMS = ("softmax", "mlp")


@dataclasses.dataclass(frozen=True)
class Data:
    """The fixed split: flat features `(n, 64)` float32 in [0, 1] and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def train_size(self):
        return len(self.y_train)

    @property
    def prior_only_features(self):
        """Boolean `(64,)`: the features that are zero in every training example."""
        return ~np.any(self.x_train != 0.0, axis=0)


def load_digits(train_take=None, test_take=None):
    """The fixed split of the digits; `*_take` keep the first examples (for quick runs)."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    train, test = order[:TRAIN_SIZE], order[TRAIN_SIZE:]
    train, test = train[:train_take], test[:test_take]
    return Data(x[train], y[train], x[test], y[test])


def layer_sizes(problem, num_features=64):
    """The widths of the layers, input first."""
    if problem == "softmax":
        return (num_features, NUM_CLASSES)
    if problem == "mlp":
        return (num_features, HIDDEN, NUM_CLASSES)
    raise ValueError(f"unknown problem {problem!r}; expected one of {PROBLEMS}")


def shapes(problem, num_features=64):
    """The shapes of the weights, in Keras's order (kernel, bias of each layer)."""
    sizes = layer_sizes(problem, num_features)
    out = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        out += [(fan_in, fan_out), (fan_out,)]
    return out


def num_params(problem, num_features=64):
    return sum(int(np.prod(shape)) for shape in shapes(problem, num_features))


def unflatten(theta, problem, num_features=64):
    """The weight arrays of a flat `theta` (numpy or JAX, last axis the parameters)."""
    out, start = [], 0
    for shape in shapes(problem, num_features):
        size = int(np.prod(shape))
        out.append(theta[..., start : start + size].reshape(theta.shape[:-1] + shape))
        start += size
    return out


def flatten(weights):
    """The flat vector of a list of weight arrays (inverse of `unflatten`)."""
    return np.concatenate([np.asarray(w, dtype="float64").reshape(-1) for w in weights])


def prior_only_mask(problem, data):
    """Boolean flat mask of the weights whose only gradient is the prior: the first kernel's
    rows of the features that are blank in every training example. Their posterior is
    exactly the prior N(0, s^2), independent of every other weight."""
    mask = [np.zeros(shape, dtype=bool) for shape in shapes(problem)]
    mask[0][data.prior_only_features, :] = True
    return np.concatenate([m.reshape(-1) for m in mask])


def logits_jax(theta, x, problem):
    """The logits `(n, 10)` of `x` under one flat `theta` (JAX)."""
    import jax.numpy as jnp

    weights = unflatten(theta, problem, x.shape[-1])
    h = x
    for i in range(0, len(weights), 2):
        h = h @ weights[i] + weights[i + 1]
        if i + 2 < len(weights):
            h = jnp.tanh(h)
    return h


def log_likelihood_jax(theta, x, y, problem):
    """`sum_i log p(y_i | x_i, theta)` (JAX)."""
    import jax
    import jax.numpy as jnp

    log_p = jax.nn.log_softmax(logits_jax(theta, x, problem), axis=-1)
    return jnp.sum(jnp.take_along_axis(log_p, y[:, None], axis=-1))


def prior_energy(theta, prior_std):
    """`-log N(theta; 0, s^2 I)` up to its constant: `sum theta^2 / (2 s^2)`."""
    return 0.5 * (theta**2).sum() / prior_std**2


def potential_fn(problem, data, prior_std):
    """`theta -> U(theta)`, the negative log posterior of `problem` on the training split."""
    import jax.numpy as jnp

    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)

    def potential(theta):
        return -log_likelihood_jax(theta, x, y, problem) + prior_energy(theta, prior_std)

    return potential


def predictive_probabilities(draws, x, problem, chunk=200):
    """The posterior predictive `(n, 10)`: the mean over `draws` `(S, P)` of the softmax."""
    import jax
    import jax.numpy as jnp

    probs = jax.jit(
        lambda thetas: jnp.mean(
            jax.nn.softmax(jax.vmap(lambda t: logits_jax(t, x, problem))(thetas), axis=-1),
            axis=0,
        )
    )
    total = np.zeros((len(x), NUM_CLASSES))
    for start in range(0, len(draws), chunk):
        part = draws[start : start + chunk]
        total += np.asarray(probs(jnp.asarray(part)), dtype="float64") * len(part)
    return total / len(draws)


def build_keras_model(problem, prior_std, num_examples, num_features=64):
    """The Keras model of `problem` (logits out), `gaussian_prior(s, N)` on every weight."""
    import keras

    from keras_langevin.sampling import gaussian_prior

    prior = gaussian_prior(prior_std, num_examples)
    sizes = layer_sizes(problem, num_features)
    inputs = keras.Input((num_features,))
    h = inputs
    for i, width in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        h = keras.layers.Dense(
            width,
            activation=None if last else "tanh",
            kernel_regularizer=prior,
            bias_regularizer=prior,
            name=f"dense_{i}",
        )(h)
    return keras.Model(inputs, h, name=problem)


def splits(data):
    """The test features and their shifted copies (`applications.sample`'s rotation by 45
    degrees and Gaussian noise, fixed seed), flat `(n, 64)` each."""
    from applications.sample.shifts import shifted_sets

    images = data.x_test.reshape(-1, 8, 8, 1)
    return {name: x.reshape(len(x), -1) for name, x in shifted_sets(images).items()}
