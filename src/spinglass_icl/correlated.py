"""In-context regression prompts with correlated tokens (supplement Fig. S4).

As :mod:`spinglass_icl.tasks` (eq. 1), but every feature ``d`` of a prompt has
correlated values across the ``N + 1`` token positions: ``x_(d, .) ~ N(0, Sigma)`` with
``Sigma = (1 - c) I + c 1 1^T`` (unit variance, correlation ``c`` between any two
positions, the query included), independently across features and prompts. Drawn
exactly as ``x = sqrt(1 - c) z + sqrt(c) g 1`` (``z`` i.i.d. per position, ``g`` shared
by the positions), so no Cholesky factor is formed. Labels, tasks and the hidden query
label are as in :func:`spinglass_icl.tasks.sample_prompts`; the result is a
:class:`~spinglass_icl.tasks.Prompts` (with the plain :class:`TaskConfig` of its D, N,
P, convention and noise), so every solver and instance builder takes it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .conventions import CONVENTION, DEFAULT_CONVENTION, Convention, get_convention
from .errors import Int, ParameterError, Real, check_int, validate_fields
from .tasks import Prompts, TaskConfig, make_generator, resolve_device

__all__ = ["CorrelatedTaskConfig", "sample_correlated_prompts", "token_covariance"]


@dataclass(frozen=True)
class CorrelatedTaskConfig:
    """Parameters of the correlated-token prompt distribution.

    Attributes
    ----------
    D, N, P : int
        Input dimension, context length, number of prompts (>= 1).
    c : float
        Correlation between any two token positions of a feature, in [0, 1).
    convention : str
        Normalization convention (sets the label scale), as :class:`TaskConfig`.
    noise : float
        Label-noise standard deviation (>= 0).
    """

    D: int
    N: int
    P: int
    c: float = 0.0
    convention: str = DEFAULT_CONVENTION
    noise: float = 0.0

    _parameter_constraints: ClassVar[dict] = {
        "D": Int(1),
        "N": Int(1),
        "P": Int(1),
        "c": Real(low=0.0, high=1.0, high_open=True),
        "convention": CONVENTION,
        "noise": Real(low=0.0),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def base(self) -> TaskConfig:
        """The i.i.d.-token :class:`TaskConfig` with the same D, N, P, convention, noise."""
        return TaskConfig(self.D, self.N, self.P, self.convention, self.noise)

    @property
    def conv(self) -> Convention:
        return get_convention(self.convention)


def token_covariance(N: int, c: float, dtype=torch.float64) -> torch.Tensor:
    """``Sigma = (1 - c) I + c 1 1^T`` over the ``N + 1`` positions."""
    return (1 - c) * torch.eye(N + 1, dtype=dtype) + c * torch.ones(N + 1, N + 1, dtype=dtype)


def sample_correlated_prompts(
    D: int | CorrelatedTaskConfig,
    N: int | None = None,
    P: int | None = None,
    *,
    c: float | None = None,
    convention: str | None = None,
    noise: float | None = None,
    seed: int = 0,
    batch_shape: tuple[int, ...] = (),
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
) -> Prompts:
    """Sample ``P`` prompts with correlated tokens (see the module docstring).

    ``D`` is the dimension or a whole :class:`CorrelatedTaskConfig` (then N, P, c,
    convention and noise are not given). The other arguments are those of
    :func:`spinglass_icl.tasks.sample_prompts`; numbers are drawn in float64 on the CPU.
    """
    if isinstance(D, CorrelatedTaskConfig):
        given = [k for k, v in dict(N=N, P=P, c=c, convention=convention, noise=noise).items()
                 if v is not None]  # fmt: skip
        if given:
            raise ParameterError(f"{given[0]} must not be given with a CorrelatedTaskConfig")
        cfg = D
    else:
        cfg = CorrelatedTaskConfig(
            D=D,
            N=N,
            P=P,
            c=0.0 if c is None else c,
            convention=DEFAULT_CONVENTION if convention is None else convention,
            noise=0.0 if noise is None else noise,
        )
    dev = resolve_device(device)
    for b in batch_shape:
        check_int("batch_shape entry", b)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ParameterError(f"dtype must be a floating torch dtype, got {dtype!r}")
    g = generator if generator is not None else make_generator(seed)
    f64 = torch.float64
    shape = (*batch_shape, cfg.P)
    w = torch.randn(*shape, cfg.D, generator=g, dtype=f64)
    z = torch.randn(*shape, cfg.D, cfg.N + 1, generator=g, dtype=f64)
    shared = torch.randn(*shape, cfg.D, 1, generator=g, dtype=f64)
    x = math.sqrt(1 - cfg.c) * z + math.sqrt(cfg.c) * shared
    labels = cfg.conv.label_scale(cfg.D) * torch.einsum("...d,...dn->...n", w, x)
    if cfg.noise > 0:
        labels = labels + cfg.noise * torch.randn(*shape, cfg.N + 1, generator=g, dtype=f64)
    y_query = labels[..., -1].clone()
    labels[..., -1] = 0.0
    X = torch.cat([x, labels[..., None, :]], dim=-2)
    return Prompts(
        X=X.to(device=dev, dtype=dtype),
        w=w.to(device=dev, dtype=dtype),
        y=y_query.to(device=dev, dtype=dtype),
        config=cfg.base,
    )
