"""The spin-glass mapping of linear-attention training (paper eq. 3-5;
docs/solvers.md#couplings-and-fields).

With spins ``sigma = vec(W)`` (row-major, ``i = (D+1) m + n``) and features
``s^mu = vec(S^mu)`` the prediction is ``y^mu = s^mu . sigma`` and the loss (eq. 2)

    L(sigma) = 1/(2P) sum_mu (y~^mu - s^mu.sigma)^2 + lam/2 |sigma|^2

equals the Hamiltonian (eq. 5)

    H(sigma) = - sum_{i<j} J_ij s_i s_j - sum_i h_i s_i + 1/2 sum_i lam_i s_i^2

plus the constant ``1/(2P) sum_mu (y~^mu)^2``, with

    J_ij  = -(1/P) sum_mu s_i s_j  (i != j),   J_ii = 0
    h_i   =  (1/P) sum_mu y~ s_i
    lam_i =  lam + (1/P) sum_mu s_i^2.

Equivalently ``H = 1/2 sigma^T A sigma - h.sigma`` with the Hessian
``A = G + lam I``, ``G = (1/P) S^T S`` (docs/solvers.md#exact).

Everything accepts leading batch dimensions: ``s`` of shape (*batch, P, n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch

from .conventions import DEFAULT_CONVENTION
from .errors import ParameterError, check_float, check_int
from .tasks import Prompts, TaskConfig, sample_prompts

__all__ = [
    "Instance",
    "build_instance",
    "make_instance",
    "FieldBlocks",
    "CouplingBlocks",
    "zero_coupling_fraction",
    "block_masks",
]


def zero_coupling_fraction(D: int) -> float:
    """Fraction ``(2D+1)/(D+1)^2`` of exactly-zero entries of the coupling matrix
    (docs/solvers.md#couplings-and-fields).

    The ``D+1`` spins of W's last column multiply the masked query label, so their
    features vanish and every coupling ``J^mu_ij = -s_i s_j`` that touches one of them
    is zero: ``1 - (D (D+1))^2 / (D+1)^4 = (2D+1)/(D+1)^2`` of the ``(D+1)^4`` entries.
    """
    D = check_int("D", D)
    return (2 * D + 1) / (D + 1) ** 2


#: the rank-one construction of G is used from this many spins on (below it S^T S is cheap)
GRAM_RANK_ONE_MIN_SPINS = 1000


def rank_one_factors(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``f, g`` of shape (*batch, P, K) with ``s^mu = vec(f^mu (x) g^mu)`` to rounding.

    ``s`` has shape (*batch, P, K*K). ``f`` is the column of ``S^mu = s^mu.reshape(K, K)``
    holding its largest entry and ``g`` the row through that entry divided by it, so
    ``f_a g_b = S_ab`` when ``S^mu`` has rank one (eq. 3: ``S^mu = c u (x) [x~; 0]``);
    exact zeros of ``S^mu`` stay exact zeros. Rank one is not checked here.
    """
    K = math.isqrt(s.shape[-1])
    S = s.reshape(*s.shape[:-1], K, K)  # (*, P, K, K)
    col = torch.linalg.vector_norm(S, ord=float("inf"), dim=-2).argmax(-1)  # (*, P)
    f = torch.take_along_dim(S, col[..., None, None], dim=-1)[..., 0]  # (*, P, K)
    row = f.abs().argmax(-1)  # (*, P)
    r = torch.take_along_dim(S, row[..., None, None], dim=-2)[..., 0, :]  # (*, P, K)
    piv = torch.take_along_dim(f, row[..., None], dim=-1)  # (*, P, 1)
    safe = torch.where(piv != 0, piv, torch.ones_like(piv))
    return f, torch.where(piv != 0, r / safe, torch.zeros_like(r))


def gram_rank_one(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``G = (1/P) sum_mu s s^T`` for ``s = vec(f (x) g)``, shape (*batch, K*K, K*K).

    ``G[(a,b),(c,d)] = (1/P) sum_mu (f_a f_c)(g_b g_d)``: one matrix product over the
    ``K(K+1)/2`` unordered pairs ``{a,c}`` and ``{b,d}`` (a quarter of the multiply-adds
    of ``S^T S``), then a gather. The result is exactly symmetric.
    """
    P, K = f.shape[-2], f.shape[-1]
    ia, ic = torch.triu_indices(K, K, device=f.device)  # pairs a <= c
    F2 = f[..., ia] * f[..., ic]  # (*, P, np)
    G2 = g[..., ia] * g[..., ic]
    M = F2.transpose(-1, -2) @ G2 / P  # (*, np, np)
    pair = torch.empty(K, K, dtype=torch.long, device=f.device)
    pair[ia, ic] = torch.arange(ia.numel(), device=f.device)
    pair[ic, ia] = pair[ia, ic]
    G = M[..., pair[:, None, :, None], pair[None, :, None, :]]  # (*, a, b, c, d)
    return G.reshape(*G.shape[:-4], K * K, K * K)


def gram(s: torch.Tensor) -> torch.Tensor:
    """``G = (1/P) S^T S`` of features ``s`` (*batch, P, n) (eq. 5).

    For ``n >= GRAM_RANK_ONE_MIN_SPINS`` rank-one features (every instance of this model)
    go through :func:`gram_rank_one`, checked once against ``S^T (S x) / P`` for a random
    x; anything else (or a failed check) uses ``S^T S``. Both agree to rounding.
    """
    P, n = s.shape[-2], s.shape[-1]
    if n >= GRAM_RANK_ONE_MIN_SPINS and math.isqrt(n) ** 2 == n:
        G = gram_rank_one(*rank_one_factors(s))
        gen = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(n, 1, generator=gen, dtype=torch.float64).to(s.device, s.dtype)
        ref = s.transpose(-1, -2) @ (s @ x) / P
        err = (G @ x - ref).abs().amax((-2, -1))
        rtol = max(1e-10, 1e3 * torch.finfo(s.dtype).eps)
        if bool((err <= rtol * ref.abs().amax((-2, -1))).all()):
            return G
    return s.transpose(-1, -2) @ s / P


@dataclass(frozen=True)
class FieldBlocks:
    """Blocks of the field matrix ``H`` ((D+1) x (D+1), ``h`` reshaped) of Fig. 1a.

    ``A = H[:D, :D]`` (D x D), ``B = H[D, :D]`` (D), ``zero = H[:, D]`` (D+1, all zero).
    """

    A: torch.Tensor
    B: torch.Tensor
    zero: torch.Tensor


@dataclass(frozen=True)
class CouplingBlocks:
    """Blocks of the coupling matrix J of Fig. 1b (spins of the zero column dropped).

    ``C``: both spins in block A; ``D``: one in A, one in B; ``E``: both in B.
    """

    C: torch.Tensor
    D: torch.Tensor
    E: torch.Tensor


def block_masks(D: int, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Boolean masks over the ``(D+1)^2`` spins: ``"A"`` (m, n < D), ``"B"`` (m = D, n < D),
    ``"zero"`` (n = D, the last column of W)."""
    idx = torch.arange((D + 1) ** 2, device=device)
    m, n = idx // (D + 1), idx % (D + 1)
    return {"A": (m < D) & (n < D), "B": (m == D) & (n < D), "zero": n == D}


@dataclass(frozen=True)
class Instance:
    """One (or a batch of) spin-glass instance(s): features, labels and ridge.

    Attributes
    ----------
    s : Tensor, shape (*batch, P, n)
        Spin features ``s^mu`` with ``n = (D+1)^2``.
    y : Tensor, shape (*batch, P)
        Query labels ``y~^mu``.
    lam : float
        Ridge (weight decay) lam >= 0 of eq. 2.
    config : TaskConfig
        The prompt distribution that made the instance (D, N, P, convention, noise).
    """

    s: torch.Tensor
    y: torch.Tensor
    lam: float
    config: TaskConfig = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", check_float("lam", self.lam, low=0.0))
        n = (self.config.D + 1) ** 2
        if self.s.shape[-1] != n or self.s.shape[-2] != self.config.P:
            raise ParameterError(
                f"s must have shape (*batch, P={self.config.P}, n={n}), got {tuple(self.s.shape)}"
            )

    # ------------------------------------------------------------------ sizes
    @property
    def D(self) -> int:
        return self.config.D

    @property
    def N(self) -> int:
        return self.config.N

    @property
    def P(self) -> int:
        return self.config.P

    @property
    def n(self) -> int:
        """Number of spins ``(D+1)^2``."""
        return (self.config.D + 1) ** 2

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.s.shape[:-2])

    @property
    def convention(self) -> str:
        return self.config.convention

    # ------------------------------------------------------- couplings (eq. 5)
    @cached_property
    def gram(self) -> torch.Tensor:
        """``G = (1/P) S^T S``, shape (*batch, n, n) (built by :func:`gram`)."""
        return gram(self.s)

    @cached_property
    def fields(self) -> torch.Tensor:
        """External fields ``h_i = (1/P) sum_mu y~ s_i`` (eq. 5), shape (*batch, n)."""
        return torch.einsum("...p,...pn->...n", self.y, self.s) / self.P

    @cached_property
    def lam_i(self) -> torch.Tensor:
        """Anisotropic ridge ``lam_i = lam + (1/P) sum_mu s_i^2`` (eq. 5), shape (*batch, n)."""
        return self.lam + (self.s * self.s).sum(-2) / self.P

    @property
    def couplings(self) -> torch.Tensor:
        """Dense couplings ``J_ij = -(1/P) sum_mu s_i s_j``, ``J_ii = 0`` (eq. 5)."""
        J = -self.gram.clone()
        J.diagonal(dim1=-2, dim2=-1).zero_()
        return J

    @property
    def hessian(self) -> torch.Tensor:
        """Hessian of H: ``A = G + lam I`` (docs/solvers.md#exact), shape (*batch, n, n)."""
        A = self.gram.clone()
        A.diagonal(dim1=-2, dim2=-1).add_(self.lam)
        return A

    @property
    def constant(self) -> torch.Tensor:
        """``L - H = (1/2P) sum_mu y~^2``, shape (*batch,)."""
        return (self.y * self.y).sum(-1) / (2 * self.P)

    # ------------------------------------------------------------ energies
    def energy(self, sigma: torch.Tensor) -> torch.Tensor:
        """Hamiltonian ``H(sigma)`` of eq. 5 from J, h and lam_i; sigma shape (*, n)."""
        J = self.couplings
        pair = 0.5 * torch.einsum("...i,...ij,...j->...", sigma, J, sigma)  # sum_{i<j}
        return -pair - (self.fields * sigma).sum(-1) + 0.5 * (self.lam_i * sigma * sigma).sum(-1)

    def loss(self, sigma: torch.Tensor) -> torch.Tensor:
        """Training loss of eq. 2 computed from predictions ``y^ = s.sigma``."""
        pred = torch.einsum("...pn,...n->...p", self.s, sigma)
        mse = ((self.y - pred) ** 2).sum(-1) / (2 * self.P)
        return mse + 0.5 * self.lam * (sigma * sigma).sum(-1)

    def predict(self, sigma: torch.Tensor) -> torch.Tensor:
        """Training-set predictions ``y^mu = s^mu . sigma`` (eq. 3), shape (*batch, P)."""
        return torch.einsum("...pn,...n->...p", self.s, sigma)

    # --------------------------------------------------------------- blocks
    def field_blocks(self) -> FieldBlocks:
        """The blocks A, B and the zero column of the field matrix (Fig. 1a)."""
        D = self.D
        H = self.fields.reshape(*self.batch_shape, D + 1, D + 1)
        return FieldBlocks(A=H[..., :D, :D], B=H[..., D, :D], zero=H[..., :, D])

    def coupling_blocks(self) -> CouplingBlocks:
        """The blocks C (A-A), D (A-B), E (B-B) of J (Fig. 1b), flattened.

        C and E are symmetric, so only their strict upper triangles (``i < j``) are
        returned; D holds every (A, B) pair. Spins of the zero column are left out.
        """
        masks = block_masks(self.D, self.s.device)
        J = self.couplings
        a, b = masks["A"], masks["B"]
        C = J[..., a, :][..., :, a]
        Dm = J[..., a, :][..., :, b]
        E = J[..., b, :][..., :, b]
        iu_c = torch.triu_indices(C.shape[-1], C.shape[-1], offset=1, device=J.device)
        iu_e = torch.triu_indices(E.shape[-1], E.shape[-1], offset=1, device=J.device)
        return CouplingBlocks(
            C=C[..., iu_c[0], iu_c[1]],
            D=Dm.reshape(*self.batch_shape, -1),
            E=E[..., iu_e[0], iu_e[1]],
        )

    def zero_fraction(self) -> float:
        """Measured fraction of exactly-zero entries of ``-G = (1/P) sum_mu J^mu``
        (self-couplings included, as in the paper's ``J^mu_ij = -s_i s_j``).

        Equals :func:`zero_coupling_fraction` for Gaussian data (tested).
        """
        return float((self.gram == 0).double().mean())

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Instance:
        """A copy on another device / dtype (cached couplings are not carried)."""
        return Instance(
            s=self.s.to(device=device, dtype=dtype),
            y=self.y.to(device=device, dtype=dtype),
            lam=self.lam,
            config=self.config,
        )

    def __getitem__(self, index: int) -> Instance:
        """The ``index``-th instance of a batch."""
        if not self.batch_shape:
            raise IndexError("cannot index an unbatched Instance")
        return Instance(s=self.s[index], y=self.y[index], lam=self.lam, config=self.config)


def build_instance(prompts: Prompts, lam: float) -> Instance:
    """The spin-glass instance of a set of prompts (eq. 3-5)."""
    return Instance(s=prompts.features(), y=prompts.y, lam=lam, config=prompts.config)


def make_instance(
    D: int,
    N: int,
    P: int,
    lam: float,
    *,
    convention: str = DEFAULT_CONVENTION,
    noise: float = 0.0,
    seed: int = 0,
    batch_shape: tuple[int, ...] = (),
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> Instance:
    """Sample prompts and build their instance in one call (see :func:`sample_prompts`)."""
    lam = check_float("lam", lam, low=0.0)
    prompts = sample_prompts(
        D,
        N,
        P,
        convention=convention,
        noise=noise,
        seed=seed,
        batch_shape=batch_shape,
        device=device,
        dtype=dtype,
    )
    return build_instance(prompts, lam)
