"""Applications of the Langevin optimizers: models, data and experiments.

Importing the package is light: `build_model` and `MODEL_NAMES` come from
`applications.models` (which imports Keras) on first access, so that the modules free of
TensorFlow (`applications.data.digits`) stay so on the TensorFlow backend too.
"""

__all__ = ["MODEL_NAMES", "build_model"]


def __getattr__(name):
    if name in __all__:
        from applications import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
