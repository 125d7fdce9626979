"""Errors and entry-point validation.

Every public entry point validates its arguments here, so that bad input gives one
clear sentence naming the parameter, its value and the allowed range, instead of a
traceback from deep inside torch ("validate at the entry point").

Every config object (a frozen dataclass: :class:`~spinglass_icl.TaskConfig`,
``TrainConfig``, ``SweepSpec``, the model configs, the figure presets, ...) checks its
fields in one way: its class declares ``_parameter_constraints = {field: constraint}``
with the constraints below (:class:`Int`, :class:`Real`, :class:`Choice`,
:class:`OrNone` for "or None", :class:`Seq` for lists, ...), and checks that involve
several fields as ``_cross_checks``, and its ``__post_init__`` calls
:func:`validate_fields`. A constraint states its rule and lists values it refuses, so
one test gives every field of every config class an invalid value and checks the
one-line error::

    @dataclass(frozen=True)
    class MyConfig:
        K: int = 4
        rate: float | None = None
        _parameter_constraints: ClassVar[dict] = {
            "K": Int(1),
            "rate": OrNone(Real(low=0.0, low_open=True)),
        }

        def __post_init__(self) -> None:
            validate_fields(self)

``MyConfig(K=0)``: ``K must be an integer >= 1, got 0``; ``MyConfig(rate=-1.5)``:
``rate must be > 0 or None, got -1.5``.
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
    rule = _float_rule(low, high, low_open, high_open)
    within = "" if rule == "finite" else f" {rule}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number{within}, got {value!r}") from None
    if not math.isfinite(x):
        raise ParameterError(f"{name} must be a finite number{within}, got {quote_number(value)}")
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
class Constraint:
    """A field constraint of :func:`validate_fields`: ``constraint(name, value)`` returns
    the value normalized or raises a one-line :class:`ParameterError` naming the field
    (``label``, if given, else the field's name), stating :attr:`rule` and quoting the
    value as typed. :meth:`invalid` gives values it refuses, each with the text its
    message quotes and the rule it states (the common test of every config class builds
    its bad inputs from them)."""

    label: str | None = None

    def __call__(self, name: str, value: Any) -> Any:
        return self.check(self.label or name, value)

    def check(self, name: str, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def rule(self) -> str:
        """The allowed values in words, as the error message states them."""
        raise NotImplementedError  # pragma: no cover - abstract

    def invalid(self) -> list[tuple[Any, str, str]]:
        """``[(value, quoted, rule)]``: values refused, with the text the message quotes
        and the allowed values it states."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _bad(self, *cases: tuple) -> list[tuple[Any, str, str]]:
        """``cases`` of ``(value, quoted)`` or ``(value, quoted, rule)``; :attr:`rule`
        where none is given."""
        return [c if len(c) == 3 else (*c, self.rule) for c in cases]


def _int_rule(minimum: int, maximum: int | None) -> str:
    return f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"


class Int(Constraint):
    """An integer field in ``[minimum, maximum]`` (:func:`check_int`)."""

    def __init__(self, minimum: int = 1, maximum: int | None = None, *, label=None) -> None:
        self.minimum, self.maximum, self.label = minimum, maximum, label

    def check(self, name: str, value: Any) -> int:
        return check_int(name, value, minimum=self.minimum, maximum=self.maximum)

    @property
    def rule(self) -> str:
        return _int_rule(self.minimum, self.maximum)

    def invalid(self) -> list[tuple[Any, str, str]]:
        out = [(self.minimum - 1, str(self.minimum - 1)), ("7", "'7'"), (2.5, "2.5")]
        out += [(True, "True")]
        if self.maximum is not None:
            out.append((self.maximum + 1, str(self.maximum + 1)))
        return self._bad(*out)


def _float_rule(low, high, low_open, high_open) -> str:
    lo_s = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi_s = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    if low is not None and high is not None:
        return f"in {lo_s}, {hi_s}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "finite"  # the message then says "a finite number" only


class Real(Constraint):
    """A finite real field in an interval (:func:`check_float`)."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False, label=None):
        self.kw = dict(low=low, high=high, low_open=low_open, high_open=high_open)
        self.label = label

    def check(self, name: str, value: Any) -> float:
        return check_float(name, value, **self.kw)

    @property
    def rule(self) -> str:
        return _float_rule(**self.kw)

    def invalid(self) -> list[tuple[Any, str, str]]:
        out = [("x", "'x'"), (math.nan, "nan"), (math.inf, "inf"), (None, "None")]
        low, high = self.kw["low"], self.kw["high"]
        if low is not None:  # as typed: "-1.00e0" stays "-1.00e0", never -1.0
            bad = float(low) if self.kw["low_open"] else float(low) - 1.0
            out += [(bad, repr(bad)), (TypedFloat(f"{bad:.2e}"), f"{bad:.2e}")]
        if high is not None:
            bad = float(high) if self.kw["high_open"] else float(high) + 1.0
            out += [(bad, repr(bad)), (TypedFloat(f"{bad:.2e}"), f"{bad:.2e}")]
        return self._bad(*out)


class Choice(Constraint):
    """A field that is one of a few names (:func:`check_choice`); ``choices`` may be a
    dict (a registry: its keys when the field is checked) or a callable returning them."""

    def __init__(self, choices, *, label: str | None = None) -> None:
        live = callable(choices) or isinstance(choices, dict)
        self._choices = choices if live else tuple(choices)
        self.label = label

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._choices() if callable(self._choices) else self._choices)

    def check(self, name: str, value: Any) -> str:
        return check_choice(name, value, self.choices)

    @property
    def rule(self) -> str:
        return f"one of {', '.join(self.choices)}"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(("no-such-choice", "'no-such-choice'"), (3, "3"))


class Flag(Constraint):
    """A boolean field (``True`` or ``False``; not 0, 1 or a string)."""

    def __init__(self, *, label: str | None = None) -> None:
        self.label = label

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParameterError(f"{name} must be true or false, got {value!r}")
        return value

    rule = "true or false"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(("yes", "'yes'"), (1, "1"))


class Text(Constraint):
    """A string field."""

    def __init__(self, *, label: str | None = None) -> None:
        self.label = label

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ParameterError(f"{name} must be a string, got {value!r}")
        return value

    rule = "a string"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad((3, "3"), (None, "None"))


class OrNone(Constraint):
    """``inner`` or None: None is kept, any other value is checked by ``inner`` and a
    refusal says "or None" (``lr must be > 0 or None, got -1.0``; ``state_none=False``:
    the message is ``inner``'s, for a message that options files and tests quote)."""

    def __init__(self, inner: Constraint, *, state_none: bool = True, label=None) -> None:
        self.inner, self.state_none, self.label = inner, state_none, label

    def check(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.inner.check(name, value)
        except ParameterError as e:
            if not self.state_none:
                raise
            msg = str(e)
            for sep in (", got ", "; got "):
                if sep in msg:
                    head, tail = msg.rsplit(sep, 1)
                    raise ParameterError(f"{head} or None{sep}{tail}") from None
            raise

    @property
    def rule(self) -> str:
        return f"{self.inner.rule} or None" if self.state_none else self.inner.rule

    def invalid(self) -> list[tuple[Any, str, str]]:
        return [
            (v, q, f"{r} or None" if self.state_none else r)
            for v, q, r in self.inner.invalid()
            if v is not None
        ]


class Either(Constraint):
    """One of the names ``literals`` (kept as given) or a value ``inner`` accepts, e.g. a
    damping in [0, 1) or ``"auto"``; a refusal says so (``damping must be in [0, 1) or
    auto, got 1.5``)."""

    def __init__(self, inner: Constraint, *literals: str, label: str | None = None) -> None:
        self.inner, self.literals, self.label = inner, literals, label

    def check(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and value in self.literals:
            return value
        try:
            return self.inner.check(name, value)
        except ParameterError as e:
            head, sep, tail = str(e).rpartition(", got ")
            if not sep:
                raise
            raise ParameterError(f"{head} or {' or '.join(self.literals)}, got {tail}") from None

    @property
    def rule(self) -> str:
        return f"{self.inner.rule} or {' or '.join(self.literals)}"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return [
            (v, q, f"{r} or {' or '.join(self.literals)}")
            for v, q, r in self.inner.invalid()
            if v not in self.literals
        ]


class Seq(Constraint):
    """A tuple of items each checked by ``item`` (a list or tuple is accepted; at least
    ``minimum`` items, exactly ``length`` if given)."""

    def __init__(self, item: Constraint, length=None, minimum: int = 1, *, label=None) -> None:
        self.item, self.length, self.minimum, self.label = item, length, minimum, label

    def check(self, name: str, value: Any) -> tuple:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ParameterError(f"{name} must be a list, got {value!r}")
        out = tuple(self.item.check(name, x) for x in value)
        if self.length is not None and len(out) != self.length:
            raise ParameterError(f"{name} must hold {self.length} values, got {len(out)}")
        if len(out) < self.minimum:
            raise ParameterError(
                f"{name} must hold at least {self.minimum} value(s), got {len(out)}"
            )
        return out

    @property
    def rule(self) -> str:
        return "a list"

    def invalid(self) -> list[tuple[Any, str, str]]:
        out = [("abc", "'abc'"), (5, "5")]
        out += [((v,) * (self.length or 1), q, r) for v, q, r in self.item.invalid()[:3]]
        if self.length is not None:
            out.append(((), "got 0", f"hold {self.length} values"))
        elif self.minimum >= 1:
            out.append(((), "got 0", f"hold at least {self.minimum}"))
        return self._bad(*out)


class Interval(Constraint):
    """A pair ``(low, high)`` of reals > 0 with ``low < high``."""

    def __init__(self, *, label: str | None = None) -> None:
        self.label = label
        self.pair = Seq(Real(low=0.0, low_open=True), length=2)

    def check(self, name: str, value: Any) -> tuple:
        lo, hi = self.pair.check(name, value)
        if not lo < hi:
            raise ParameterError(
                f"{name} must be [low, high] with low < high, got [{lo:g}, {hi:g}]"
            )
        return (lo, hi)

    rule = "[low, high] with low < high"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(
            ((2.0, 1.0), "[2, 1]"),
            ((1.0, 2.0, 3.0), "got 3", "hold 2 values"),
            ((-1.0, 2.0), "-1.0", "> 0"),
            ("x", "'x'", "a list"),
        )


class Table(Constraint):
    """A dict whose keys and values ``key`` and ``value`` accept (``what``: the table in
    words, ``model -> dtype``)."""

    def __init__(
        self, key: Constraint, value: Constraint, what: str, *, key_name="key", label=None
    ):
        self.key, self.value, self.what, self.label = key, value, what, label
        self.key_name = key_name

    def check(self, name: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ParameterError(f"{name} must be a table {self.what}, got {value!r}")
        return {
            self.key.check(f"{name} {self.key_name}", k): self.value.check(f"{name}[{k}]", v)
            for k, v in value.items()
        }

    @property
    def rule(self) -> str:
        return f"a table {self.what}"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(("x", "'x'"), *(({v: None}, q, r) for v, q, r in self.key.invalid()))


class InstanceOf(Constraint):
    """An object of class ``cls`` (``what``: its name in messages)."""

    def __init__(self, cls: type, what: str | None = None, *, label=None) -> None:
        self.cls, self.what, self.label = cls, what or f"a {cls.__name__}", label

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, self.cls):
            raise ParameterError(f"{name} must be {self.what}, got {type(value).__name__}")
        return value

    @property
    def rule(self) -> str:
        return self.what

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(("x", "str"), (None, "NoneType"))


class Tensor(Constraint):
    """A real tensor or array of at least ``min_ndim`` dimensions, kept as a floating
    torch tensor (:func:`as_float_tensor`)."""

    def __init__(self, min_ndim: int = 0, *, label: str | None = None) -> None:
        self.min_ndim, self.label = min_ndim, label

    def check(self, name: str, value: Any) -> Any:
        return as_float_tensor(name, value, min_ndim=self.min_ndim)

    rule = "a real tensor or array"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(("x", "str"), (None, "NoneType"), (1j, "complex"))


class Check(Constraint):
    """A constraint from a function ``func(name, value) -> value`` that raises
    :class:`ParameterError` itself; ``rule`` says what it allows and ``invalid`` lists
    values it refuses as ``(value, quoted)`` or ``(value, quoted, rule)`` (the rule its
    message states, where not ``rule``)."""

    def __init__(self, func, rule: str, invalid, *, label: str | None = None) -> None:
        self.func, self._rule, self._invalid, self.label = func, rule, list(invalid), label

    def check(self, name: str, value: Any) -> Any:
        return self.func(name, value)

    @property
    def rule(self) -> str:
        return self._rule

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(*self._invalid)


def validate_fields(obj: Any) -> None:
    """Check (and normalize) every field of a frozen dataclass named in its class's
    ``_parameter_constraints`` (``{field: constraint}``, a :class:`Constraint` such as
    :class:`Int`, :class:`Real`, :class:`Choice`, :class:`OrNone`, :class:`Seq`), as
    scikit-learn does: each object checks its own fields once, in ``__post_init__``, and
    the code below it trusts them. Then the checks of several fields together, the
    class's ``_cross_checks`` (callables of the object, or names of its methods), run in
    order on the normalized fields."""
    cls = type(obj)
    for name, check in cls._parameter_constraints.items():
        object.__setattr__(obj, name, check(name, getattr(obj, name)))
    for check in getattr(cls, "_cross_checks", ()):
        (getattr(obj, check) if isinstance(check, str) else (lambda c=check: c(obj)))()
