"""Applications of the Langevin optimizers: models, data and experiments."""

from applications.models import build_model, MODEL_NAMES
