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

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import torch

from .errors import (
    InstanceOf,
    ParameterError,
    Real,
    Tensor,
    as_float_tensor,
    check_int,
    validate_fields,
)
from .precision import Precision
from .tasks import Factors, Prompts, RankOneFactors, TaskConfig, sample_prompts

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


@functools.lru_cache(maxsize=8)
def pair_index(k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs ``a <= a'`` of ``range(k)`` (``ia``, ``ib``) and, for every ordered pair
    ``(a, a')`` (row-major, ``k^2`` of them), the index ``p(a, a')`` of its unordered pair."""
    ia, ib = torch.triu_indices(k, k, device=device)
    pair = torch.empty(k, k, dtype=torch.long, device=device)
    ar = torch.arange(ia.numel(), device=device)
    pair[ia, ib] = ar
    pair[ib, ia] = ar
    return ia, ib, pair.reshape(-1)


def pair_products(u: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``sum_mu u_a u_a' q_b q_b'`` on unordered pairs ``{a, a'}``, ``{b, b'}``, shape
    (*batch, k2, k2) with ``k2 = k (k + 1) / 2``: one GEMM over the prompts, 4x fewer
    multiply-adds than ``S^T S``. Sums over disjoint sets of prompts add up (how a
    nested sweep extends G from one P to the next). u, q: (*batch, P, k)."""
    ia, ib, _ = pair_index(u.shape[-1], u.device)
    UU = u[..., ia] * u[..., ib]  # (*, P, k2)
    QQ = q[..., ia] * q[..., ib]
    return UU.transpose(-1, -2) @ QQ


def pair_gram(u: torch.Tensor, q: torch.Tensor, c: float) -> torch.Tensor:
    """``Gs[p(a,a'), p(b,b')] = (c^2/P) sum_mu u_a u_a' q_b q_b'``: the Gram matrix
    ``G = (1/P) S^T S`` of ``S^mu = c u_mu (x) q_mu`` (eq. 5) on unordered index pairs."""
    return (c * c / u.shape[-2]) * pair_products(u, q)


def expand_pairs(Gs: torch.Tensor, k: int) -> torch.Tensor:
    """The ``n x n`` matrix ``G[(a,b),(a',b')] = Gs[p(a,a'), p(b,b')]`` from the
    pair-by-pair matrix ``Gs`` (*batch, k2, k2), ``n = k^2``: exactly symmetric.

    Two contiguous row/column selections and one permuted copy (a flat gather of ``n^2``
    indices is 1.5-2x slower on the CPU); a pure copy, so bit-identical to the gather.
    """
    pf = pair_index(k, Gs.device)[2]  # (a, a') -> p(a, a')
    X = Gs.index_select(-2, pf).index_select(-1, pf)  # (*, (a, a'), (b, b'))
    nb = X.dim() - 2
    X = X.reshape(*X.shape[:-2], k, k, k, k)
    X = X.permute(*range(nb), nb, nb + 2, nb + 1, nb + 3)  # (*, a, b, a', b')
    return X.reshape(*X.shape[:nb], k * k, k * k)


def gram_from_factors(
    u: torch.Tensor, q: torch.Tensor, c: float, squared: bool = False
) -> torch.Tensor:
    """``G = (1/P) S^T S`` (or ``G o G`` if ``squared``) of ``S^mu = c u_mu (x) q_mu``,
    shape (*batch, n, n): :func:`pair_gram` then :func:`expand_pairs`. The one Gram
    construction of the package (instances, sweeps, nested sweeps)."""
    Gs = pair_gram(u, q, c)
    if squared:
        Gs = Gs * Gs
    return expand_pairs(Gs, u.shape[-1])


def gram_rank_one(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``G = (1/P) sum_mu s s^T`` for ``s = vec(f (x) g)`` (:func:`gram_from_factors`
    with ``c = 1``), shape (*batch, K*K, K*K)."""
    return expand_pairs(pair_products(f, g) / f.shape[-2], f.shape[-1])


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
class Instance(RankOneFactors):
    """One (or a batch of) spin-glass instance(s): the rank-one factors and the ridge.

    Every feature vector is rank one (eq. 3): ``S^mu = c u_mu (x) q_mu`` with
    ``u_mu = sum_i y_i [x_i; y_i]``, ``q_mu = [x~_mu; 0]`` and ``c`` the prefactor of the
    convention, so the factors are all an instance needs. Dense quantities (features,
    Gram matrix, couplings, Hessian) are derived and cached on first use, for the dense
    solvers; the matrix-vector products :meth:`S`, :meth:`ST`, :meth:`gram_matvec` and
    :meth:`hessian_matvec` cost ``O(P D^2)`` and never form them, for the matrix-free
    solvers (large D).

    Attributes
    ----------
    u, q : Tensor, shape (*batch, P, D+1)
        The factors.
    y : Tensor, shape (*batch, P)
        Query labels ``y~^mu``.
    lam : float
        Ridge (weight decay) lam >= 0 of eq. 2, checked once here.
    config : TaskConfig
        The prompt distribution that made the instance (D, N, P, convention, noise).
    """

    u: torch.Tensor
    q: torch.Tensor
    y: torch.Tensor
    lam: float
    config: TaskConfig = field(repr=False)

    # integer / boolean factors are converted to float64 explicitly, never truncated
    _parameter_constraints: ClassVar[dict] = {
        "lam": Real(low=0.0),
        "config": InstanceOf(TaskConfig),
        "u": Tensor(2),
        "q": Tensor(2),
        "y": Tensor(1),
    }
    _cross_checks: ClassVar[tuple] = ("_check_shapes",)

    def __post_init__(self) -> None:
        validate_fields(self)

    def _check_shapes(self) -> None:
        """The factors' shapes, dtypes and devices agree with each other and the config."""
        if tuple(self.y.shape) != tuple(self.u.shape[:-1]):
            raise ParameterError(
                f"y must have shape {tuple(self.u.shape[:-1])} (the leading dims of u), "
                f"got {tuple(self.y.shape)}"
            )
        if len({(t.dtype, t.device) for t in (self.u, self.q, self.y)}) != 1:
            raise ParameterError(
                "u, q and y must have the same dtype and device, got "
                + ", ".join(f"{t.dtype} on {t.device}" for t in (self.u, self.q, self.y))
            )
        shape = (self.config.P, self.config.D + 1)
        if tuple(self.u.shape[-2:]) != shape or tuple(self.q.shape[-2:]) != shape:
            raise ParameterError(
                f"u and q must have shape (*batch, P, D+1) = (*, {shape[0]}, {shape[1]}), "
                f"got {tuple(self.u.shape)} and {tuple(self.q.shape)}"
            )

    @classmethod
    def from_features(
        cls, s: torch.Tensor, y: torch.Tensor, lam: float, config: TaskConfig
    ) -> Instance:
        """The instance of dense rank-one features ``s`` (*batch, P, (D+1)^2) (e.g. read
        back from ``instance.npz``), factored by :func:`rank_one_factors`; raises
        :class:`ParameterError` if ``s`` is not rank one to rounding."""
        s = as_float_tensor("s", s, min_ndim=2)
        n = (config.D + 1) ** 2
        if s.shape[-1] != n or s.shape[-2] != config.P:
            raise ParameterError(
                f"s must have shape (*batch, P={config.P}, n={n}), got {tuple(s.shape)}"
            )
        f, g = rank_one_factors(s)
        c = config.prefactor
        err = (f[..., :, None] * g[..., None, :]).reshape(s.shape) - s
        if float(err.abs().max()) > 1e-10 * max(float(s.abs().max()), 1e-300):
            raise ParameterError("s must hold rank-one features c u (x) q (eq. 3), it does not")
        return cls(u=f / c, q=g, y=y, config=config, lam=lam)

    def __repr__(self) -> str:
        """One line: sizes, ridge, batch shape and dtype, never the tensors."""
        return (
            f"Instance(D={self.D}, N={self.N}, P={self.P}, lam={self.lam:g}, "
            f"convention={self.convention!r}, batch={self.batch_shape}, n={self.n}, "
            f"{str(self.u.dtype).replace('torch.', '')}, {self.u.device.type})"
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
    def c(self) -> float:
        """The prefactor c of ``S^mu = c u (x) q``."""
        return self.config.prefactor

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.u.shape[:-2])

    @property
    def convention(self) -> str:
        return self.config.convention

    # ---------------------------------------------- matrix-free operators (eq. 3, 5)
    def S(self, m: torch.Tensor) -> torch.Tensor:
        """``S m``: predictions ``c u_mu^T M q_mu`` for spins m (*batch, n) -> (*batch, P)."""
        M = m.reshape(*m.shape[:-1], self.D + 1, self.D + 1)
        return self.c * ((self.u @ M) * self.q).sum(-1)

    def ST(self, r: torch.Tensor) -> torch.Tensor:
        """``S^T r = c U^T diag(r) Q`` flattened: (*batch, P) -> (*batch, n)."""
        out = (self.u * r[..., None]).transpose(-1, -2) @ self.q
        return self.c * out.reshape(*out.shape[:-2], -1)

    def gram_matvec(self, m: torch.Tensor) -> torch.Tensor:
        """``G m = (1/P) S^T S m`` without forming G."""
        return self.ST(self.S(m)) / self.P

    def hessian_matvec(self, m: torch.Tensor) -> torch.Tensor:
        """``A m = G m + lam m``."""
        return self.gram_matvec(m) + self.lam * m

    @cached_property
    def fields(self) -> torch.Tensor:
        """External fields ``h_i = (1/P) sum_mu y~ s_i = (1/P) S^T y~`` (eq. 5), shape
        (*batch, n)."""
        return self.ST(self.y) / self.P

    @cached_property
    def gram_diag(self) -> torch.Tensor:
        """``diag(G) = (c^2/P) (U o U)^T (Q o Q)`` flattened, shape (*batch, n)."""
        d = (self.u * self.u).transpose(-1, -2) @ (self.q * self.q)
        return (self.c**2 / self.P) * d.reshape(*d.shape[:-2], -1)

    @property
    def lam_i(self) -> torch.Tensor:
        """Anisotropic ridge ``lam_i = lam + (1/P) sum_mu s_i^2 = lam + diag(G)`` (eq. 5)."""
        return self.lam + self.gram_diag

    # ------------------------------------------------- dense quantities (eq. 5)
    @cached_property
    def s(self) -> torch.Tensor:
        """Dense features ``s^mu = vec(c u (x) q)``, shape (*batch, P, n): ``O(P n)`` memory."""
        return self.features()

    @cached_property
    def gram(self) -> torch.Tensor:
        """``G = (1/P) S^T S``, shape (*batch, n, n) (:func:`gram_from_factors`)."""
        return gram_from_factors(self.u, self.q, self.c)

    @property
    def couplings(self) -> torch.Tensor:
        """Dense couplings ``J_ij = -(1/P) sum_mu s_i s_j``, ``J_ii = 0`` (eq. 5)."""
        J = -self.gram.clone()
        J.diagonal(dim1=-2, dim2=-1).zero_()
        return J

    @property
    def hessian(self) -> torch.Tensor:
        """Hessian of H: ``A = G + lam I`` (eq. 5), shape (*batch, n, n)."""
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
        mse = ((self.y - self.predict(sigma)) ** 2).sum(-1) / (2 * self.P)
        return mse + 0.5 * self.lam * (sigma * sigma).sum(-1)

    def predict(self, sigma: torch.Tensor) -> torch.Tensor:
        """Training-set predictions ``y^mu = s^mu . sigma`` (eq. 3), shape (*batch, P)."""
        return self.S(sigma)

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
        masks = block_masks(self.D, self.u.device)
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
        """A copy on another device / dtype (cached quantities are not carried)."""
        return dataclasses.replace(
            self,
            u=self.u.to(device=device, dtype=dtype),
            q=self.q.to(device=device, dtype=dtype),
            y=self.y.to(device=device, dtype=dtype),
        )

    def __getitem__(self, index: int) -> Instance:
        """The ``index``-th instance of a batch."""
        if not self.batch_shape:
            raise IndexError("cannot index an unbatched Instance")
        return dataclasses.replace(self, u=self.u[index], q=self.q[index], y=self.y[index])

    @classmethod
    def stack(cls, parts: list[Instance]) -> Instance:
        """Instances of one shape and lam stacked along a new leading batch dimension
        (the config of the first: the solvers do not use N)."""
        return dataclasses.replace(
            parts[0],
            u=torch.stack([p.u for p in parts]),
            q=torch.stack([p.q for p in parts]),
            y=torch.stack([p.y for p in parts]),
        )


def build_instance(prompts: Prompts | Factors, lam: float) -> Instance:
    """The spin-glass instance of a set of prompts, or of their factors (eq. 3-5)."""
    if not isinstance(prompts, (Prompts, Factors)):
        raise ParameterError(
            "prompts must be spinglass_icl Prompts or Factors (see sample_prompts), "
            f"got {type(prompts).__name__}"
        )
    f = prompts.factors() if isinstance(prompts, Prompts) else prompts
    return Instance(u=f.u, q=f.q, y=f.y, config=f.config, lam=lam)


def make_instance(
    D: int | TaskConfig,
    N: int | None = None,
    P: int | None = None,
    lam: float | None = None,
    *,
    convention: str | None = None,
    noise: float | None = None,
    seed: int = 0,
    batch_shape: tuple[int, ...] = (),
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | Precision = torch.float64,
) -> Instance:
    """Sample prompts and build their instance in one call (see :func:`sample_prompts`).

    ``D`` is the input dimension or a whole :class:`TaskConfig` (then pass ``lam`` by
    name: ``make_instance(task, lam=0.01)``); ``dtype`` is a torch dtype or a
    :class:`~spinglass_icl.precision.Precision` (or its name; instances of ``"mixed"``
    are float64). Every field is checked once, by the config that holds it.
    """
    if not isinstance(dtype, torch.dtype):
        dtype = Precision.of(dtype).dtype
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
