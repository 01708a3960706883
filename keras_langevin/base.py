"""What every Langevin optimizer shares: its API, its state and its serialization.

`LangevinMixin` goes before a Keras optimizer in the bases of a class. The Keras optimizer does
the drift; the mixin then adds, to each selected variable,

    sigma_t * sqrt(learning_rate_t * P_t) * xi_t,    xi_t ~ N(0, I) fresh for every step and variable,

where `P_t` is the optimizer's own diagonal preconditioner, given by one hook per optimizer.
Which variables are selected is decided once, at `build`; the update of an unselected variable
is exactly the Keras update and draws no random numbers. A constant `sigma` of 0 adds nothing
at all, so the optimizer is then Keras's own.

This module holds the constructor (its arguments are documented and checked in
`_arguments`), the state (the model, the selection at `build`, sigma as a variable or a
schedule, the seed variable and `reseed`) and `get_config`/`from_config`. How a step adds the
noise, on each backend, is in `_updates` (the routes) and `_xla_updates` (TensorFlow's
compiled per-shape update).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_langevin import _arguments, _compat, _updates, _xla_updates, selection
from keras_langevin import noise as noise_lib
from keras_langevin._arguments import fill_docstring, langevin_args_doc

__all__ = ["LangevinMixin", "Sigma", "fill_docstring", "langevin_args_doc", "langevin_optimizer"]

Sigma = float | keras.optimizers.schedules.LearningRateSchedule


def langevin_optimizer(optimizer: keras.optimizers.Optimizer) -> LangevinMixin:
    """The Langevin optimizer itself, or the one inside Keras's wrappers.

    Under a `mixed_float16` policy, `model.compile` wraps the optimizer in a
    `keras.optimizers.LossScaleOptimizer`, which does not forward the Langevin attributes;
    `keras_langevin.langevin_optimizer(model.optimizer).langevin_variables` reaches them
    either way.

    Args:
        optimizer: a Langevin optimizer, or a `LossScaleOptimizer` around one.

    Returns:
        The `LangevinMixin` instance.

    Raises:
        ValueError: there is no Langevin optimizer in `optimizer`.
    """
    inner = optimizer
    while not isinstance(inner, LangevinMixin):
        inner = getattr(inner, "inner_optimizer", None)
        if inner is None:
            raise ValueError(
                "Argument `optimizer` must be a keras_langevin optimizer or a "
                f"LossScaleOptimizer around one. Received: optimizer={optimizer!r}"
            )
    return inner


def _no_noise_message(cls, sigma):
    keras_class = next(
        c
        for c in cls.__mro__
        if issubclass(c, keras.optimizers.Optimizer) and not issubclass(c, LangevinMixin)
    )
    return (
        f"{cls.__name__} adds noise to the layers nearest the input, so it needs `sigma` > 0 "
        f"(a float or a schedule): with sigma=0 it would add no noise, ever, and be "
        f"keras.optimizers.{keras_class.__name__}. Pass the noise level, e.g. "
        f"{cls.__name__}(sigma=1e-3), or use keras.optimizers.{keras_class.__name__}. "
        f"Received: sigma={sigma!r}"
    )


class _ModelReference:
    """The optimizer's model, held outside Keras's and TensorFlow's tracking (a tracked model
    would become a dependency of the optimizer's checkpoint). A plain reference, as a Keras
    callback holds its model: `optimizer.set_model(build_model())` must not lose the model
    when the caller keeps no other reference to it."""

    def __init__(self):
        self.model = None

    def set(self, model):
        self.model = model

    def get(self):
        return self.model


class LangevinMixin(_updates.LangevinUpdates):
    """Adds preconditioned Langevin noise to the update of a Keras optimizer.

    Subclasses list the mixin before the Keras optimizer, declare in `langevin_slots` the
    names of the Keras optimizer's per-variable slot lists (what its `build` creates), and may
    override three hooks, each given the variable's `index` in the optimizer's list:
    `_langevin_pre_update(variable, index)` (values the preconditioner needs from before the
    Keras update), `_langevin_preconditioner(variable, index, pre_update)` (the tensor `P_t`
    after the update, or None when `P_t = 1`) and `_langevin_add_noise(variable, index,
    increment)` (adds the noise term to the variable; LSGHMC also puts it in the momentum).
    """

    langevin_slots: tuple[str, ...] = ()
    # True for classes whose name promises noise (the Layer forms): sigma=0 is refused.
    langevin_requires_noise: bool = False

    def __init__(
        self,
        *,
        sigma: Sigma = 0.0,
        langevin_layers: selection.LayerSelection = None,
        seed: int | None = None,
        noise: str = "gaussian",
        jit_compile: bool = True,
        **kwargs,
    ) -> None:
        # A config saved while the noise was paused (sigma set to 0): noise traced, sigma 0.
        paused = bool(kwargs.pop("sigma_paused", False))
        # Validate before Keras creates any variable: bad input fails at construction.
        sigma = _arguments.validate_sigma(sigma)
        if paused and sigma != 0.0:
            raise ValueError(
                "`sigma_paused=True` (saved by `get_config` while the noise was paused) goes "
                f"with sigma=0. Received: sigma={sigma!r}"
            )
        langevin_layers = selection.validate_selection(langevin_layers)
        seed = _arguments.validate_seed(seed)
        noise = noise_lib.validate_noise(noise)
        jit_compile = _arguments.validate_jit_compile(jit_compile)
        if self.langevin_requires_noise and sigma == 0.0 and not paused:
            raise ValueError(_no_noise_message(type(self), sigma))
        _compat.check_optimizer(self)
        if kwargs.get("name") is None:
            kwargs["name"] = _arguments.default_name(type(self))
        super().__init__(**kwargs)
        self._sigma = sigma
        # sigma = 0 at construction is the Keras optimizer: no noise is ever traced.
        self._noise_off = isinstance(sigma, float) and sigma == 0.0 and not paused
        if isinstance(sigma, float):
            # Like Keras's learning rate: a variable, so setting it needs no retracing.
            self._sigma_variable = self.add_variable(
                shape=(),
                initializer=keras.initializers.Constant(sigma),
                dtype=keras.backend.floatx(),
                aggregation="only_first_replica",
                name="sigma",
            )
        self.langevin_layers = langevin_layers
        self.seed = seed
        self.noise = noise
        self.jit_compile = jit_compile
        self._langevin_indices = frozenset()
        self._compiled_updates = _xla_updates.FunctionCache()
        self._model = _ModelReference()

    # ----------------------------------------------------------------------------- state

    def set_model(self, model: keras.Layer) -> None:
        """Tells the optimizer which model its variables belong to.

        Layer Langevin needs the model to order its layers (a fraction) and to name them
        (layer names and patterns, nested models included). `model.fit` tells the optimizer
        itself (the model Keras is fitting); a custom training loop calls this once, before
        the first step:

            optimizer = keras_langevin.LayerLAdam(1e-3, sigma=1e-3)
            optimizer.set_model(model)
            ...
            optimizer.apply(grads, model.trainable_variables)

        Args:
            model: the `keras.Model` (or layer) whose trainable variables the optimizer
                updates. The optimizer keeps a reference to it.

        Raises:
            TypeError: `model` is not a Keras layer or model.
            ValueError: the optimizer is already built and this model would select other
                variables than those it was built with.
        """
        if not isinstance(model, keras.Layer):
            raise TypeError(
                "Argument `model` must be a keras.Model (or keras.Layer) holding the "
                f"optimizer's variables. Received: model={model!r}"
            )
        if self.built and self._langevin_indices != self._select(self._trainable(), model):
            raise ValueError(
                f"The optimizer is already built, with another selection of noisy variables "
                f"than model '{model.name}' gives: call `set_model` before the first step "
                f"(or before `build`). Received: model={model!r}"
            )
        self._model.set(model)

    def _resolve_model(self, variables):
        """The model of `variables`: the one given to `set_model`, else the one Keras is
        fitting or compiled with this optimizer (found by identity), else None."""
        model = self._model.get()
        if model is not None:
            outside = selection.unowned(variables, model)
            if outside:
                raise ValueError(
                    f"The model given to `set_model` ('{model.name}') does not hold "
                    f"{len(outside)} of the optimizer's variables, e.g. "
                    f"{variables[outside[0]].path!r}. Give the model whose trainable "
                    "variables the optimizer updates."
                )
            return model
        candidates = [
            m for m in _compat.models_compiled_with(self) if not selection.unowned(variables, m)
        ]
        if len(candidates) > 1 and isinstance(self.langevin_layers, float):
            raise ValueError(
                "Several models are compiled with this optimizer "
                f"({', '.join(repr(m.name) for m in candidates)}): call "
                "`optimizer.set_model(model)` to say which one it updates."
            )
        return candidates[0] if len(candidates) == 1 else None

    def _select(self, variables, model):
        if self.langevin_layers is None or callable(self.langevin_layers):
            return selection.select(variables, self.langevin_layers)
        return selection.select(variables, self.langevin_layers, model)

    def _trainable(self):
        return list(_compat.trainable_variables(self))

    def build(self, variables) -> None:
        if self.built:
            return
        variables = list(variables)
        model = None
        if self.langevin_layers is not None and not callable(self.langevin_layers):
            model = self._resolve_model(variables)
        if isinstance(self.langevin_layers, float) and model is None:
            # Before Keras creates anything: a failed build leaves the optimizer unbuilt.
            raise ValueError(selection.NO_MODEL_MESSAGE.format(value=self.langevin_layers))
        super().build(variables)
        seed = _arguments.drawn_seed() if self.seed is None else self.seed
        self._langevin_seed = self.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(_arguments.seed_as_int32(seed)),
            dtype="int32",
            name="langevin_seed",
        )
        self._langevin_indices = self._select(variables, model)
        _compat.check_slots(self, self.langevin_slots)

    def reseed(self, seed: int) -> None:
        """Sets the seed of the noise, from the next step on.

        Before `build` it replaces the `seed` argument; after, it sets the optimizer's seed
        variable (saved with the optimizer, identical on every replica). The same seed at
        the same step gives the same noise.

        Args:
            seed: Int in [0, 2**32).

        Raises:
            TypeError, ValueError: `seed` is not an int in [0, 2**32).
        """
        if seed is None:
            raise TypeError(
                f"Argument `seed` must be an int in [0, 2**32). Received: seed={seed!r}"
            )
        seed = _arguments.validate_seed(seed)
        self.seed = seed
        if self.built:
            self._langevin_seed.assign(_arguments.seed_as_int32(seed))

    @property
    def langevin_variables(self) -> list:
        """The model variables that receive noise (available after `build`; empty for an
        optimizer constructed with sigma=0, which never adds noise)."""
        if not self.built or self._noise_off:  # sigma=0 at construction: no noise, ever
            return []
        return [v for i, v in enumerate(self._trainable()) if i in self._langevin_indices]

    @property
    def sigma(self):
        """The current noise level: a tensor (the variable's value, or the schedule's value
        at the current step).

        Settable with a float when `sigma` is a float that was not 0 at construction; the new
        value is used from the next step on.
        """
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            return self._sigma(self.iterations)
        return ops.convert_to_tensor(self._sigma_variable)

    @sigma.setter
    def sigma(self, value) -> None:
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a schedule as its `sigma` argument, hence its "
                "sigma is not settable. Construct it with a float `sigma` to set it later. "
                f"Received: sigma={value!r}"
            )
        if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(
                "A sigma schedule can only be given at construction; set a float (or a scalar "
                "tensor) here. "
                f"Received: sigma={value!r}"
            )
        value = _arguments.validate_sigma_value(value)
        if self._noise_off and value != 0.0:
            raise ValueError(
                "This optimizer was constructed with sigma=0, which is exactly the Keras "
                "optimizer (no noise is traced), so its sigma cannot be changed. Construct "
                "it with the sigma you start from (and set sigma to 0 to pause the noise). "
                f"Received: sigma={value!r}"
            )
        self._sigma_variable.assign(value)

    def _current_sigma(self):
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            return self._sigma(self.iterations)
        return self._sigma_variable

    # ---------------------------------------------------------------------- serialization

    def get_config(self):
        config = super().get_config()
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            sigma = keras.optimizers.schedules.serialize(self._sigma)
        else:  # the current value, as Keras does for the learning rate
            sigma = float(ops.convert_to_numpy(self._sigma_variable))
        layers = self.langevin_layers
        if callable(layers):
            layers = _arguments.serialize_predicate(layers)
        elif isinstance(layers, tuple):
            layers = list(layers)
        config.update(
            {
                "sigma": sigma,
                "langevin_layers": layers,
                "seed": self.seed,
                "noise": self.noise,
                "jit_compile": self.jit_compile,
            }
        )
        if not self._noise_off and sigma == 0.0:
            config["sigma_paused"] = True  # reloads resumable, unlike a sigma=0 optimizer
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("sigma"), dict):
            config["sigma"] = keras.optimizers.schedules.deserialize(
                config["sigma"], custom_objects=custom_objects
            )
        if isinstance(config.get("langevin_layers"), dict):
            config["langevin_layers"] = keras.saving.deserialize_keras_object(
                config["langevin_layers"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)


_compat.add_loss_scale_sigma(lambda optimizer: isinstance(optimizer, LangevinMixin))
