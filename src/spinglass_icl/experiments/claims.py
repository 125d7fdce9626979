"""Verdicts claim by claim: a paper's sentence, what we measured, the threshold, the verdict.

A figure states its paper's claims as :class:`Claim` s, each built by one of the
threshold helpers below from one measured number, so that every verdict can be
recomputed from ``result.json`` alone:

* :func:`at_least` / :func:`at_most`: ``agrees`` on one side of a threshold,
  ``partly`` in a stated band beyond it, ``disagrees`` past the band;
* :func:`holds`: a yes/no test (a theorem-like statement, e.g. "every eigenvalue is
  positive");
* :func:`not_comparable`: the claim cannot be tested with our data (with the reason).

A measured number that is NaN or infinite gives ``not comparable``, never a verdict.
:func:`overall` turns a figure's claims into its overall verdict, which is never
``agrees`` when any claim disagrees.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ..errors import Check, Choice, ParameterError, Text, validate_fields

__all__ = [
    "VERDICTS",
    "Claim",
    "at_least",
    "at_most",
    "holds",
    "not_comparable",
    "overall",
]

#: the verdicts, from best to worst agreement (and the untestable case)
VERDICTS: tuple[str, ...] = ("agrees", "partly", "disagrees", "not comparable")


def _measured(name: str, value: Any) -> float | None:
    """A measured number, kept as a float; None, NaN or inf (nothing measured) as None."""
    if value is None:
        return None
    try:
        m = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number or None, got {value!r}") from None
    return m if math.isfinite(m) else None


@dataclass(frozen=True)
class Claim:
    """One checkable sentence of the paper and our verdict on it.

    Attributes
    ----------
    claim : str
        The paper's sentence (or the caption's), as a checkable statement.
    quantity : str
        What ``measured`` is, in words.
    measured : float or None
        The number the verdict is computed from (None: nothing measured).
    criterion : str
        The stated thresholds: when the verdict is ``agrees``, ``partly``, ``disagrees``.
    verdict : str
        One of :data:`VERDICTS`.
    """

    claim: str
    quantity: str
    measured: float | None
    criterion: str
    verdict: str

    _parameter_constraints: ClassVar[dict] = {
        "claim": Text(),
        "quantity": Text(),
        "measured": Check(_measured, "a real number or None", [("x", "'x'"), ((1,), "(1,)")]),
        "criterion": Text(),
        "verdict": Choice(VERDICTS),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def to_dict(self) -> dict:
        """JSON-able fields (``measured`` None where not finite)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Claim:
        return cls(**{k: d.get(k) for k in ("claim", "quantity", "measured", "criterion")},
                   verdict=d["verdict"])  # fmt: skip


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(float(x))


def _banded(
    claim: str,
    quantity: str,
    measured: float | None,
    agree: float,
    partly: float | None,
    upper: bool,
) -> Claim:
    """The verdict of :func:`at_least` (``upper``: larger is better) or :func:`at_most`."""
    if partly is not None and (partly > agree if upper else partly < agree):
        side = "<=" if upper else ">="
        raise ParameterError(
            f"partly threshold must be {side} the agree threshold {agree:g}, got {partly:g}"
        )
    op, beyond = (">=", "below") if upper else ("<=", "above")
    crit = f"agrees if {op} {agree:.4g}"
    crit += f"; partly if {op} {partly:.4g}" if partly is not None else ""
    crit += f"; disagrees {beyond}"
    if not _finite(measured):
        return Claim(claim, quantity, None, crit, "not comparable")
    m = float(measured)

    def within(t: float) -> bool:
        return m >= t if upper else m <= t

    if within(agree):
        return Claim(claim, quantity, m, crit, "agrees")
    if partly is not None and within(partly):
        return Claim(claim, quantity, m, crit, "partly")
    return Claim(claim, quantity, m, crit, "disagrees")


def at_least(
    claim: str,
    quantity: str,
    measured: float | None,
    agree: float,
    partly: float | None = None,
) -> Claim:
    """``agrees`` if ``measured >= agree``; ``partly`` if ``>= partly``; else ``disagrees``.

    Parameters
    ----------
    claim, quantity : str
        The paper's sentence and what ``measured`` is.
    measured : float or None
        The measured number; NaN, inf or None give ``not comparable``.
    agree, partly : float
        Thresholds (``partly <= agree``; None: no ``partly`` band).
    """
    return _banded(claim, quantity, measured, agree, partly, upper=True)


def at_most(
    claim: str,
    quantity: str,
    measured: float | None,
    agree: float,
    partly: float | None = None,
) -> Claim:
    """``agrees`` if ``measured <= agree``; ``partly`` if ``<= partly``; else ``disagrees``.

    The mirror image of :func:`at_least` (``partly >= agree``).
    """
    return _banded(claim, quantity, measured, agree, partly, upper=False)


def holds(claim: str, quantity: str, measured: float | None, ok: bool, criterion: str) -> Claim:
    """A yes/no test: ``agrees`` if ``ok`` else ``disagrees`` (``not comparable`` when
    ``measured`` is not finite)."""
    if not _finite(measured):
        return Claim(claim, quantity, None, criterion, "not comparable")
    return Claim(claim, quantity, float(measured), criterion, "agrees" if ok else "disagrees")


def not_comparable(claim: str, reason: str) -> Claim:
    """A claim our data cannot test; ``reason`` says why."""
    return Claim(claim, "-", None, reason, "not comparable")


def overall(claims: Iterable[Claim] | Sequence[dict]) -> str:
    """The figure's verdict from its claims.

    ``not comparable`` claims are left out; of the rest: all ``agrees`` -> ``agrees``,
    all ``disagrees`` -> ``disagrees``, anything else -> ``partly``; no testable claim ->
    ``not comparable``. Hence never ``agrees`` when a claim disagrees or agrees only partly.
    """
    vs = [c["verdict"] if isinstance(c, dict) else c.verdict for c in claims]
    vs = [v for v in vs if v != "not comparable"]
    if not vs:
        return "not comparable"
    if all(v == "agrees" for v in vs):
        return "agrees"
    if all(v == "disagrees" for v in vs):
        return "disagrees"
    return "partly"
