"""The embedded digits, kept at this path for the benchmark's import line: see
`applications.data.digits`, where the code lives (free of TensorFlow, like this module)."""

from applications.data.digits import DIGITS_SPLIT, load_digits_arrays

__all__ = ["DIGITS_SPLIT", "load_digits_arrays"]
