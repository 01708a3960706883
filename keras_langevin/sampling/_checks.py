"""Argument checks shared by the sampling modules (messages in Keras's style)."""

import math
from numbers import Integral, Real


def positive_int(name, value, minimum=1):
    """An int >= minimum: TypeError for another type, ValueError for a smaller int."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"Argument `{name}` must be an int. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an int >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def optional_positive_int(name, value, minimum=1):
    return None if value is None else positive_int(name, value, minimum)


def real(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """A finite real number in the given (closed unless said open) interval: TypeError for
    another type, ValueError for a value outside."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"Argument `{name}` must be a float. Received: {name}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"Argument `{name}` must be finite. Received: {name}={value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = (
            f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        )
        raise ValueError(f"Argument `{name}` must be in {interval}. Received: {name}={value!r}")
    return value
