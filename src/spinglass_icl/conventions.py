"""The three normalization conventions of the linear-attention ICL model (docs/conventions.md).

| name         | label y          | prefactor c | ground state (P, N -> inf, lam -> 0) |
|--------------|------------------|-------------|--------------------------------------|
| ``authors``  | w.x / sqrt(D)    | 1/(N+1)     | W11 ~ I, W21 = 0                     |
| ``paper-text``| w.x             | 1/(D N)     | W11 = D N/(N+D+1) I                  |
| ``normalized``| w.x / sqrt(D)   | 1/N         | W11 = N/(N+D+1) I                    |

``authors`` (the authors' published code, which made the paper's figures) is the
default everywhere. The printed eq. (1)-(2) of the paper is ``paper-text``; the
author's slides and Lu et al. (2024) use ``normalized``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .errors import Check, Choice, check_choice, finite_derived, validate_fields

CONVENTIONS: tuple[str, ...] = ("authors", "paper-text", "normalized")
DEFAULT_CONVENTION = "authors"


@dataclass(frozen=True)
class Convention:
    """A normalization convention.

    Attributes
    ----------
    name
        One of :data:`CONVENTIONS`.
    """

    name: str = DEFAULT_CONVENTION

    _parameter_constraints: ClassVar[dict] = {"name": Choice(CONVENTIONS, label="convention")}

    def __post_init__(self) -> None:
        validate_fields(self)

    def label_scale(self, D: int) -> float:
        """Factor multiplying ``w.x`` in every label (1/sqrt(D) or 1)."""
        return 1.0 if self.name == "paper-text" else 1.0 / math.sqrt(D)

    def prefactor(self, D: int, N: int) -> float:
        """The attention prefactor c in ``Y = c X X^T W X`` (eq. 2, 40)."""
        if self.name == "authors":
            return 1.0 / (N + 1)
        if self.name == "paper-text":
            return 1.0 / (D * N)
        return 1.0 / N

    def label_variance(self, D: int, noise: float = 0.0) -> float:
        """``E y~^2`` for Gaussian tasks and inputs: ``scale^2 D + noise^2``
        (a noise whose square overflows: :class:`~spinglass_icl.errors.ParameterError`)."""
        return finite_derived(
            "noise", noise, "the label variance scale^2 D + noise^2",
            lambda: self.label_scale(D) ** 2 * D + noise**2,
        )  # fmt: skip

    def ground_state_diag(self, D: int, N: int) -> float:
        """Diagonal g of the optimal ``W11 = g I`` as P -> inf, lam -> 0 (``W21 = 0``).

        With ``u = X0 y0`` the prediction is ``c g u.x~``; minimizing
        ``E (y~ - c g u.x~)^2`` with ``E[X0 X0^T X0 X0^T] = N (N + D + 1) I`` gives
        ``g = 1 / (c (N + D + 1))`` in every convention (the label scale cancels):
        (N+1)/(N+D+1) for ``authors``, D N/(N+D+1) for ``paper-text`` (D=10, N=400: 9.73;
        docs/conventions.md#ground-states) and N/(N+D+1) for ``normalized``.
        """
        return 1.0 / (self.prefactor(D, N) * (N + D + 1))


def get_convention(convention: str | Convention | None) -> Convention:
    """Return the :class:`Convention` of a name (``None`` means the default): one shared
    instance per name, checked when it was made."""
    if isinstance(convention, Convention):
        return convention
    name = DEFAULT_CONVENTION if convention is None else convention
    if not isinstance(name, str) or name not in _BY_NAME:
        check_choice("convention", name, CONVENTIONS)  # raises
    return _BY_NAME[name]


_BY_NAME: dict[str, Convention] = {name: Convention(name) for name in CONVENTIONS}


#: the field constraint of a convention (a name or a :class:`Convention`; kept as its name)
CONVENTION = Check(
    lambda name, value: get_convention(value).name,
    f"one of {', '.join(CONVENTIONS)}",
    [("no-such-convention", "'no-such-convention'"), (3, "3")],
)
