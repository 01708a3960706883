"""Applications of the Langevin optimizers: models, data and experiments."""

from applications.models import MODEL_NAMES, build_model

__all__ = ["MODEL_NAMES", "build_model"]
