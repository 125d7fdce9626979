"""Numerical precision of a computation: one type from the CLI down to the kernels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .errors import Choice, validate_fields

#: ``float64`` everywhere; ``float32`` everywhere; ``mixed``: float64 except the dense
#: ``n x n`` matrices of the batched AMP kernel (float32)
PRECISIONS: tuple[str, ...] = ("float64", "float32", "mixed")


@dataclass(frozen=True)
class Precision:
    """A precision (one of :data:`PRECISIONS`), checked once.

    Attributes
    ----------
    name : str
        ``"float64"`` (default), ``"float32"`` or ``"mixed"``.
    """

    name: str = "float64"

    _parameter_constraints: ClassVar[dict] = {"name": Choice(PRECISIONS, label="dtype")}

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def of(cls, value: str | Precision | torch.dtype) -> Precision:
        """A :class:`Precision` from its name, itself, or a torch floating dtype."""
        if isinstance(value, Precision):
            return value
        if value is torch.float64:
            return cls("float64")
        if value is torch.float32:
            return cls("float32")
        return cls(value)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of instances, states and results."""
        return torch.float32 if self.name == "float32" else torch.float64

    @property
    def matrix_dtype(self) -> torch.dtype | None:
        """The dtype of the batched AMP kernel's dense matrices (None: that of the state)."""
        return torch.float32 if self.name == "mixed" else None

    @property
    def itemsize(self) -> int:
        """Bytes per entry of the dense matrices (what a batch's memory is planned with)."""
        return 8 if self.name == "float64" else 4

    def __str__(self) -> str:
        return self.name
