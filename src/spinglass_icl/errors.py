"""Errors and entry-point validation.

Every public entry point validates its arguments here, so that bad input gives one
clear sentence naming the parameter, its value and the allowed range, instead of a
traceback from deep inside torch ("validate at the entry point").
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Iterable
from typing import Any


class SpinGlassError(Exception):
    """Base class of every error raised on purpose by spinglass-icl."""


class ParameterError(SpinGlassError, ValueError):
    """A parameter is outside its allowed range.

    The message always has the form ``"<name> must be <rule>, got <value>"``.
    """


class ConfigError(SpinGlassError, ValueError):
    """A configuration file or result store cannot be read or is not ours."""


class ConvergenceWarning(UserWarning):
    """A message-passing solver stopped without reaching its tolerance."""


class TypedFloat(float):
    """A float that remembers the text it was read from (the CLI's numbers: ``type=float``
    of every command's parser makes one), so that an error quotes the value exactly as
    the user typed it (``--damping 1.0000001``, never ``1``)."""

    text: str

    def __new__(cls, text: Any) -> TypedFloat:
        obj = super().__new__(cls, text)
        obj.text = text.strip() if isinstance(text, str) else repr(float(text))
        return obj

    def __repr__(self) -> str:
        return self.text

    def __reduce__(self):
        return (TypedFloat, (self.text,))


def quote_number(value: Any) -> str:
    """``value`` as the user gave it: a :class:`TypedFloat`'s text, else the shortest
    text that reads back as the same float (``repr``), never a rounded ``%g``."""
    if isinstance(value, TypedFloat):
        return value.text
    if isinstance(value, str):
        return repr(value)
    try:
        return repr(float(value))
    except (TypeError, ValueError, OverflowError):
        return repr(value)


def finite_derived(name: str, value: Any, what: str, compute) -> float:
    """``compute()`` (a value derived from parameter ``name``), or a one-line
    :class:`ParameterError` naming ``name`` and its value when it overflows float64
    (OverflowError, or an infinite or NaN result): ``noise = 1e300`` squared."""
    try:
        x = float(compute())
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise ParameterError(
            f"{name} = {quote_number(value)} is too large: {what} overflows float64 "
            f"(max {sys.float_info.max:.3g})"
        )
    return x


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise :class:`ParameterError` naming ``name``."""
    rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool):
        raise ParameterError(f"{name} must be an integer {rng}, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif isinstance(value, float) and value.is_integer():
        out = int(value)
    else:
        raise ParameterError(f"{name} must be an integer {rng}, got {value!r}")
    if out < minimum or (maximum is not None and out > maximum):
        raise ParameterError(f"{name} must be an integer {rng}, got {out}")
    return out


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the given interval, or raise ParameterError."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number, got {value!r}") from None
    lo_s = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi_s = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    if low is not None and high is not None:
        rule = f"in {lo_s}, {hi_s}"
    elif low is not None:
        rule = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        rule = f"{'<' if high_open else '<='} {high:g}"
    else:
        rule = "finite"
    if not math.isfinite(x):
        raise ParameterError(f"{name} must be a finite number {rule}, got {quote_number(value)}")
    bad = (low is not None and (x < low or (low_open and x == low))) or (
        high is not None and (x > high or (high_open and x == high))
    )
    if bad:
        raise ParameterError(f"{name} must be {rule}, got {quote_number(value)}")
    return x  # a plain float: configs store, pickle and save it as any float


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ParameterError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


class NonFiniteWarning(UserWarning):
    """Some instances of a batch are non-finite (or a ratio of them is 0/0): their
    results are NaN, on purpose; the others are computed as usual. A single instance
    never warns: it raises :class:`ParameterError`."""


def check_finite_batch(name: str, t: Any, *, batch_dims: int, what: str):
    """``t`` if every entry is finite; else :class:`ParameterError` for an unbatched
    ``t`` (``batch_dims`` leading dims = 0) or a batch with no finite instance, and a
    :class:`NonFiniteWarning` (those instances give NaN ``what``) for a partly
    non-finite batch."""
    import torch

    bad = ~torch.isfinite(t)
    if not bool(bad.any()):
        return t
    n_bad = int(bad.sum())
    kinds = " and ".join(
        k for k, m in (("nan", torch.isnan(t)), ("inf", torch.isinf(t))) if bool(m.any())
    )
    if batch_dims == 0:
        raise ParameterError(
            f"{name} must be finite, got {n_bad} non-finite entr{'y' if n_bad == 1 else 'ies'} "
            f"({kinds}) in shape {tuple(t.shape)}"
        )
    per = bad.flatten(batch_dims).any(-1)
    k, n = int(per.sum()), per.numel()
    if k == n:
        raise ParameterError(
            f"{name} must be finite, got non-finite entries ({kinds}) in all {n} instances"
        )
    import warnings

    warnings.warn(
        f"{k} of {n} instances of {name} have non-finite entries ({kinds}); their {what} is NaN",
        NonFiniteWarning,
        stacklevel=3,
    )
    return t


def refuse_zero_batch(name: str, zero: Any, what: str) -> None:
    """For a boolean tensor ``zero`` (one entry per instance, 0-dim if unbatched) of
    instances where ``what`` is 0/0: :class:`ParameterError` if unbatched or all, else
    a :class:`NonFiniteWarning` (those are NaN)."""
    if not bool(zero.any()):
        return
    if zero.dim() == 0 or bool(zero.all()):
        raise ParameterError(
            f"{name} must not be zero: its {what} is 0/0 (undefined)"
            + ("" if zero.dim() == 0 else f" (all {zero.numel()} instances)")
        )
    import warnings

    warnings.warn(
        f"{int(zero.sum())} of {zero.numel()} instances of {name} are zero; their {what} "
        "is 0/0: NaN",
        NonFiniteWarning,
        stacklevel=3,
    )


def check_shape(name: str, t: Any, want: tuple, rule: str) -> None:
    """Raise :class:`ParameterError` unless ``tuple(t.shape) == want``; ``rule`` says
    what the shape means (e.g. ``"(*batch, P, D+1, N+1) of its config"``)."""
    if not hasattr(t, "shape"):
        raise ParameterError(f"{name} must be a tensor of shape {rule}, got {type(t).__name__}")
    got = tuple(t.shape)
    if got != tuple(want):
        raise ParameterError(f"{name} must have shape {rule} = {tuple(want)}, got {got}")


class ResourceError(SpinGlassError):
    """A run would need more memory (or other resources) than the machine has.

    The message gives the estimate, what is available and what to do instead.
    """


class OutputError(SpinGlassError):
    """An output path cannot or must not be written (it is a store, an input, a file
    where a folder is needed, read-only, ...). Nothing has been written."""


#: seeds are 64-bit unsigned integers (torch.Generator.manual_seed's range)
SEED_MAX = 2**64 - 1


def check_seed(value: Any, name: str = "seed") -> int:
    """Return ``value`` as a seed in ``[0, 2**64 - 1]``, or raise ParameterError."""
    return check_int(name, value, minimum=0, maximum=SEED_MAX)


def as_float_tensor(name: str, value: Any, *, ndim: int | None = None, min_ndim: int = 0):
    """``value`` as a floating torch tensor, or raise :class:`ParameterError` naming ``name``.

    Tensors and arrays of integers or booleans are converted explicitly to float64 (never
    truncated: arithmetic on an integer tensor would round every intermediate result);
    floating tensors are returned unchanged; complex values, strings, None and other
    objects are refused. ``ndim`` / ``min_ndim`` check the number of dimensions.
    """
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, (np.ndarray, list, tuple, numbers.Real)) and not isinstance(value, bool):
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError):
            raise ParameterError(
                f"{name} must be a real tensor or array, got {type(value).__name__}"
            ) from None
    else:
        raise ParameterError(f"{name} must be a real tensor or array, got {type(value).__name__}")
    if t.is_complex():
        raise ParameterError(f"{name} must be real, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)  # integers and booleans: exact in float64 below 2**53
    if ndim is not None and t.dim() != ndim:
        raise ParameterError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dim() < min_ndim:
        raise ParameterError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(t.shape)}"
        )
    return t


# ------------------------------------------------ declared field constraints
class Int:
    """An integer field in ``[minimum, maximum]`` (:func:`check_int`)."""

    def __init__(self, minimum: int = 1, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    def __call__(self, name: str, value: Any) -> int:
        return check_int(name, value, minimum=self.minimum, maximum=self.maximum)


class Real:
    """A finite real field in an interval (:func:`check_float`)."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False) -> None:
        self.kw = dict(low=low, high=high, low_open=low_open, high_open=high_open)

    def __call__(self, name: str, value: Any) -> float:
        return check_float(name, value, **self.kw)


class Choice:
    """A field that is one of a few names (:func:`check_choice`)."""

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)

    def __call__(self, name: str, value: Any) -> str:
        return check_choice(name, value, self.choices)


def validate_fields(obj: Any) -> None:
    """Check (and normalize) every field of a frozen dataclass named in its class's
    ``_parameter_constraints`` (``{field: constraint}``, a constraint being a callable
    ``(name, value) -> value`` such as :class:`Int`, :class:`Real`, :class:`Choice`),
    as scikit-learn does: each object checks its own fields once, in ``__post_init__``,
    and the code below it trusts them."""
    for name, check in type(obj)._parameter_constraints.items():
        object.__setattr__(obj, name, check(name, getattr(obj, name)))
