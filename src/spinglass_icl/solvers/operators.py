"""The Hamiltonian of a batch of instances, in one place (paper eq. 5).

``H = -sum_{i<j} J_ij s_i s_j - sum_i h_i s_i + 1/2 sum_i lam_i s_i^2`` with
``J = -G`` off the diagonal, ``G = (1/P) S^T S``, ``h = (1/P) S^T y~`` and
``lam_i = lam + G_ii`` (docs/solvers.md#couplings-and-fields). An :class:`Operators`
object gives every solver what it needs of it -- ``h``, ``lam_i``, ``diag G`` and the
products ``G m``, ``J m``, ``J^2 v`` (``J_ij^2``, zero diagonal) and ``A m`` with
``A = G + lam I`` -- and, where they fit, the dense ``G``, ``J``, ``J^2`` and ``A``.
Three backends build them from the rank-one factors ``S^mu = c u_mu (x) q_mu`` (eq. 3):

``dense`` (:class:`DenseOperators`)
    One :class:`~spinglass_icl.hamiltonian.Instance` (batched or not): its cached dense
    ``G``; ``J^2`` formed once, on first use. ``O(n^2)`` memory.
``pair`` (:class:`PairOperators`)
    A batch of one shape given by its pair Gram matrix
    (:func:`~spinglass_icl.hamiltonian.pair_gram`; what sweeps build, 4x fewer
    multiply-adds than ``S^T S``): ``J^2`` expanded from it, ``G m`` through the factors
    when ``P <= n`` (:func:`use_lowrank_matvec`), optionally mixed precision.
``matfree`` (:class:`MatrixFreeOperators`)
    Never forms an ``n x n`` matrix: ``G m = (1/P) S^T (S m)`` in ``O(P D^2)``; ``J^2 v``
    estimated (block-uniform variances and Hutchinson row sums) or computed exactly in
    ``O(P^2 n)`` (docs/solvers.md#matrix-free-solvers).

:func:`operators_for` picks the backend from what it is given. Solvers and the
stability analysis read only these objects; no other module forms ``G``, ``J`` or
``J^2``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ParameterError, ResourceError, check_choice, check_int
from ..hamiltonian import Instance, block_masks, expand_pairs, pair_gram
from ..tasks import make_generator
from ._blas import Symv, symv_kernel, symv_pair
from .registry import get_solver

__all__ = [
    "DenseOperators",
    "MatrixFreeOperators",
    "Operators",
    "PairOperators",
    "VARIANCE_TERMS",
    "hutchinson_row_sums",
    "operators_for",
    "use_lowrank_matvec",
]

#: how the matrix-free backend forms ``J^2 v``
VARIANCE_TERMS: tuple[str, ...] = ("scalar", "exact")


def _row(x: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``x^T M`` for a batch of vectors x (*batch, n) and matrices M (*batch, n, n): the
    row product, which batched CPU matmul runs faster than ``M x`` (M is symmetric)."""
    return (x.unsqueeze(-2) @ M).squeeze(-2)


def _square(G: torch.Tensor) -> torch.Tensor:
    """``G o G`` (a new tensor). On the CPU through NumPy, whose large allocations ask for
    huge pages: the same numbers, without the ~5500 page faults of a fresh 22 MB torch
    tensor at D = 40 (8 ms, a tenth of a dense AMP solve)."""
    if G.device.type == "cpu" and G.is_contiguous() and not G.requires_grad:
        Gn = G.numpy()
        return torch.from_numpy(np.multiply(Gn, Gn))
    return G * G


def _zero_diag(M: torch.Tensor) -> torch.Tensor:
    M.diagonal(dim1=-2, dim2=-1).zero_()
    return M


@dataclass(frozen=True, repr=False)
class Operators:
    """The Hamiltonian of a batch (eq. 5) as the solvers use it; see the module docstring.

    Attributes
    ----------
    h : Tensor, shape (*batch, n)
        Fields ``h_i = (1/P) sum_mu y~ s_i``.
    gram_diag : Tensor, shape (*batch, n)
        ``G_ii = (1/P) sum_mu s_i^2``.
    lam : float
        The ridge; ``lam_i = lam + G_ii``.
    """

    backend = "base"
    h: torch.Tensor
    gram_diag: torch.Tensor
    lam: float

    # ----------------------------------------------------------------- sizes
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.h.shape[:-1])

    @property
    def n(self) -> int:
        return int(self.h.shape[-1])

    @property
    def lam_i(self) -> torch.Tensor:
        """Anisotropic ridge ``lam_i = lam + G_ii`` (eq. 5)."""
        return self.lam + self.gram_diag

    # --------------------------------------------------------------- products
    def gram_matvec(self, m: torch.Tensor) -> torch.Tensor:
        """``G m``."""
        raise NotImplementedError

    def couplings_matvec(self, m: torch.Tensor) -> torch.Tensor:
        """``J m = -G m + diag(G) m`` (``J_ii = 0``)."""
        return self.gram_diag * m - self.gram_matvec(m)

    def j2_matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``sum_{j != i} J_ij^2 v_j`` (the variance term of eq. 34 is ``beta^2`` times it)."""
        raise NotImplementedError

    def hessian_matvec(self, m: torch.Tensor) -> torch.Tensor:
        """``A m = G m + lam m``."""
        return self.gram_matvec(m) + self.lam * m

    def amp_products(
        self, m: torch.Tensor, v: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(J m, J^2 v)`` of one AMP iteration (eq. 34); ``J^2 v`` is None if ``v`` is.
        The two products are independent, so a backend may take them at once."""
        return self.couplings_matvec(m), None if v is None else self.j2_matvec(v)

    # -------------------------------------------------------- dense matrices
    @property
    def gram(self) -> torch.Tensor:
        """Dense ``G`` (*batch, n, n)."""
        raise ResourceError(
            f"the {self.backend} backend forms no n x n matrix (n = {self.n}); use the "
            "dense or pair backend for solvers that need one"
        )

    @property
    def j2(self) -> torch.Tensor:
        """Dense ``J^2`` (``J_ij^2``, zero diagonal)."""
        return _zero_diag(self.gram * self.gram)

    @property
    def couplings(self) -> torch.Tensor:
        """Dense ``J = -G`` with a zero diagonal (a new tensor)."""
        return _zero_diag(-self.gram)

    @property
    def hessian(self) -> torch.Tensor:
        """Dense ``A = G + lam I`` (a new tensor)."""
        A = self.gram.clone()
        A.diagonal(dim1=-2, dim2=-1).add_(self.lam)
        return A

    def with_lam(self, lam: float) -> Operators:
        """The same couplings at another ridge (the matrices are shared, not copied)."""
        return dataclasses.replace(self, lam=float(lam))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(backend={self.backend!r}, n={self.n}, "
            f"batch={self.batch_shape}, lam={self.lam:g}, dtype={self.h.dtype})"
        )


@dataclass(frozen=True, repr=False)
class DenseOperators(Operators):
    """Dense ``G`` and ``J^2`` of one :class:`~spinglass_icl.hamiltonian.Instance`.

    ``J m`` uses the diagonal of the dense ``G`` (so ``J_ii`` is exactly 0) and ``lam_i``
    the instance's factor formula; ``J^2 = G o G`` is formed once, on first use (the
    only ``n x n`` allocation of an AMP solve beyond ``G``).
    """

    backend = "dense"
    G: torch.Tensor = field(default=None)  # type: ignore[assignment]
    lam_i_: torch.Tensor = field(default=None)  # type: ignore[assignment]
    _cache: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, instance: Instance) -> DenseOperators:
        G = instance.gram
        return cls(
            h=instance.fields,
            gram_diag=G.diagonal(dim1=-2, dim2=-1).clone(),
            lam=instance.lam,
            G=G,
            lam_i_=instance.lam_i,
        )

    @property
    def lam_i(self) -> torch.Tensor:
        if self.lam_i_ is None:
            return self.lam + self.gram_diag
        return self.lam_i_

    def with_lam(self, lam: float) -> DenseOperators:
        return dataclasses.replace(self, lam=float(lam), lam_i_=None)

    @property
    def gram(self) -> torch.Tensor:
        return self.G

    @property
    def j2(self) -> torch.Tensor:
        if "j2" not in self._cache:
            self._cache["j2"] = _zero_diag(_square(self.G))
        return self._cache["j2"]

    def _kernel(self, name: str):
        """The product with the symmetric ``G`` or ``J^2``: BLAS ``symv`` for one CPU
        matrix (:mod:`._blas`), else the row product (built once per matrix)."""
        key = "mv_" + name
        if key not in self._cache:
            M = self.G if name == "G" else self.j2
            self._cache[key] = symv_kernel(M) or (lambda x: _row(x, M))
        return self._cache[key]

    def gram_matvec(self, m: torch.Tensor) -> torch.Tensor:
        return self._kernel("G")(m)

    def j2_matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._kernel("J2")(v)

    def amp_products(
        self, m: torch.Tensor, v: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(J m, J^2 v)``; on the CPU the two ``symv`` run at once on two threads
        (:func:`._blas.symv_pair`; the same numbers as one after the other)."""
        kg = self._kernel("G")
        kj = None if v is None else self._kernel("J2")
        if not (isinstance(kg, Symv) and isinstance(kj, Symv)):
            return super().amp_products(m, v)
        Gm, J2v = symv_pair(kg, m, kj, v)
        return self.gram_diag * m - Gm, J2v


def use_lowrank_matvec(P: int, n: int, itemsize: int = 8) -> bool:
    """Whether the pair backend applies ``G`` through the factors (``O(P n)`` flops on
    ``O(P D)`` data) rather than as a dense ``n x n`` matrix: for ``P <= n`` in float64,
    ``P <= 3 n`` with float32 matrices (mixed precision; the factors' GEMMs in float32).
    Measured at D = 40 (1 thread, 2-core AMD EPYC VM): float64 breaks even at P ~ n;
    float32 factors beat a float32 dense G up to P = 2.3 n (1.63 vs 1.84 ms/iteration)."""
    return P <= (n if itemsize >= 8 else 3 * n)


@dataclass(frozen=True, repr=False)
class PairOperators(Operators):
    """A batch of one shape in pair-Gram form (what sweeps build).

    Attributes (beyond :class:`Operators`)
    ----------
    Gs : Tensor, shape (*batch, k2, k2)
        The pair Gram matrix (:func:`~spinglass_icl.hamiltonian.pair_gram`, normalized).
    u, q : Tensor, shape (*batch, P, k)
        The factors, the prefactor folded into ``c2P = c^2 / P``.
    c2P : float
        ``c^2 / P`` of ``G m = c2P U^T diag(U^T M Q) Q``.
    matrix_dtype : torch.dtype or None
        ``torch.float32`` with float64 factors is mixed precision: the dense ``n x n``
        matrices (``J^2``, and ``G`` if used) and their products in float32, everything
        else in float64 (:func:`~spinglass_icl.solvers.lowrank.solve_amp_batched`).
    lowrank_matvec : bool or None
        ``G m`` through the factors; None: :func:`use_lowrank_matvec`.

    The matrices of the matrix-vector products are built once, on first use, and shared
    by :meth:`with_lam` copies (several lam, beta and solvers at one P).
    """

    backend = "pair"
    Gs: torch.Tensor = field(default=None)  # type: ignore[assignment]
    u: torch.Tensor = field(default=None)  # type: ignore[assignment]
    q: torch.Tensor = field(default=None)  # type: ignore[assignment]
    c2P: float = 1.0
    matrix_dtype: torch.dtype | None = None
    lowrank_matvec: bool | None = None
    _cache: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.lowrank_matvec is None:
            item = 8 if self.matrix_dtype in (None, torch.float64) else 4
            low = use_lowrank_matvec(self.u.shape[-2], self.n, item)
            object.__setattr__(self, "lowrank_matvec", low)

    @classmethod
    def of_factors(
        cls,
        u: torch.Tensor,
        q: torch.Tensor,
        y: torch.Tensor,
        c: float,
        lam: float,
        *,
        matrix_dtype: torch.dtype | None = None,
        lowrank_matvec: bool | None = None,
    ) -> PairOperators:
        """The operators of a batch of factors ``S^mu = c u_mu (x) q_mu`` (u, q:
        (*batch, P, k); y: (*batch, P))."""
        k, P = u.shape[-1], u.shape[-2]
        n = k * k
        bs = tuple(u.shape[:-2])
        c2P = c * c / P
        gd = c2P * ((u * u).transpose(-1, -2) @ (q * q)).reshape(*bs, n)
        h = (c / P) * ((u * y[..., None]).transpose(-1, -2) @ q).reshape(*bs, n)
        return cls(
            h=h, gram_diag=gd, lam=float(lam), Gs=pair_gram(u, q, c), u=u, q=q, c2P=c2P,
            matrix_dtype=matrix_dtype, lowrank_matvec=lowrank_matvec,
        )  # fmt: skip

    @property
    def k(self) -> int:
        return int(self.u.shape[-1])

    @property
    def _mdt(self) -> torch.dtype:
        return self.Gs.dtype if self.matrix_dtype is None else self.matrix_dtype

    def _matrices(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(G or None, J^2)`` in the matrix dtype: ``G`` only if not
        ``lowrank_matvec``; ``J^2 = G o G`` with a zero diagonal."""
        if "mv" not in self._cache:
            mdt, Gs, k = self._mdt, self.Gs, self.k
            G = None if self.lowrank_matvec else expand_pairs(Gs.to(mdt), k)
            if G is not None and mdt == Gs.dtype:
                J2 = G * G  # the same numbers as expanding Gs o Gs, one pass fewer
            else:  # (mixed: J^2 rounded once from float64)
                J2 = expand_pairs((Gs * Gs).to(mdt), k)
            self._cache["mv"] = (G, _zero_diag(J2))
        return self._cache["mv"]

    @property
    def gram(self) -> torch.Tensor:
        """Dense ``G`` in the factors' dtype (a new tensor)."""
        return expand_pairs(self.Gs, self.k)

    @property
    def j2(self) -> torch.Tensor:
        return self._matrices()[1].to(self.Gs.dtype)

    @property
    def couplings(self) -> torch.Tensor:
        G = self.gram
        return _zero_diag(G.neg_())

    @property
    def hessian(self) -> torch.Tensor:
        A = self.gram
        A.diagonal(dim1=-2, dim2=-1).add_(self.lam)
        return A

    def gram_matvec(self, m: torch.Tensor) -> torch.Tensor:
        G, _ = self._matrices()
        mdt = self._mdt
        if G is not None:
            return _row(m.to(mdt), G).to(m.dtype)
        u, q = self.u, self.q
        if mdt != u.dtype:  # mixed precision: the factors' products too
            if "uq" not in self._cache:
                self._cache["uq"] = (u.to(mdt), q.to(mdt))
            u, q = self._cache["uq"]
        k = self.k
        M = m.to(mdt).reshape(*self.batch_shape, k, k)
        r = ((u @ M) * q).sum(-1)  # (*, P): (S m) / c
        out = (u * r[..., None]).transpose(-1, -2) @ q
        return (self.c2P * out).reshape(*self.batch_shape, k * k).to(m.dtype)

    def j2_matvec(self, v: torch.Tensor) -> torch.Tensor:
        return _row(v.to(self._mdt), self._matrices()[1]).to(v.dtype)


def hutchinson_row_sums(
    inst: Instance, n_probes: int = 64, seed: int = 0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Estimate ``r_i = sum_{j != i, j in mask} G_ij^2 = diag(G P G)_i - [i in mask] G_ii^2``
    (``P`` the projector on the spins of ``mask``; all spins if None) with ``n_probes``
    Rademacher probes (Hutchinson): ``diag(G P G) ~= mean_k z_k o G P G z_k``.

    The probes come from a CPU generator seeded with ``seed`` (reproducible on any
    device). Negative estimates are clipped at 0.
    """
    n_probes = check_int("n_probes", n_probes)
    g = make_generator(seed)
    bs = inst.batch_shape
    acc = torch.zeros(*bs, inst.n, dtype=inst.u.dtype, device=inst.u.device)
    for _ in range(n_probes):
        z = torch.randint(0, 2, (*bs, inst.n), generator=g, dtype=torch.int64) * 2 - 1
        z = z.to(device=inst.u.device, dtype=inst.u.dtype)
        Gz = inst.gram_matvec(z)
        if mask is not None:
            Gz = Gz * mask
        acc += z * inst.gram_matvec(Gz)
    gd = inst.gram_diag
    self_term = gd * gd if mask is None else gd * gd * mask
    return (acc / n_probes - self_term).clamp_min(0.0)


@dataclass(frozen=True, repr=False)
class MatrixFreeOperators(Operators):
    """The products of one :class:`~spinglass_icl.hamiltonian.Instance` through its
    factors; no ``n x n`` matrix (large D).

    ``J^2 v`` has no low-rank form. ``variance_term="exact"`` computes it as
    ``(1/P^2) diag(S^T K S) - G_ii^2 v_i`` with ``K = S diag(v) S^T`` (``O(P^2 n)`` per
    product, small D: checks); ``"scalar"`` (default) is the block-uniform-variance
    estimate ``sum_X r_i^X <v>_X`` over the coupled spin blocks X = A (W11) and B (W's
    last row), ``r_i^X`` from :func:`hutchinson_row_sums` with ``n_probes`` probes seeded
    ``probe_seed + X`` (docs/solvers.md#matrix-free-solvers).
    """

    backend = "matfree"
    instance: Instance = field(default=None)  # type: ignore[assignment]
    variance_term: str = "scalar"
    n_probes: int = 64
    probe_seed: int = 0
    _cache: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls,
        instance: Instance,
        *,
        variance_term: str = "scalar",
        n_probes: int = 64,
        probe_seed: int = 0,
    ) -> MatrixFreeOperators:
        check_choice("variance_term", variance_term, VARIANCE_TERMS)
        return cls(
            h=instance.fields, gram_diag=instance.gram_diag, lam=instance.lam,
            instance=instance, variance_term=variance_term,
            n_probes=check_int("n_probes", n_probes), probe_seed=probe_seed,
        )  # fmt: skip

    @property
    def options(self) -> dict[str, Any]:
        return {"variance_term": self.variance_term, "n_probes": self.n_probes}

    def gram_matvec(self, m: torch.Tensor) -> torch.Tensor:
        return self.instance.gram_matvec(m)

    def j2_matvec(self, v: torch.Tensor) -> torch.Tensor:
        if self.variance_term == "exact":
            s = self.instance.s  # (*, P, n)
            K = (s * v[..., None, :]) @ s.transpose(-1, -2)  # (*, P, P)
            full = ((K @ s) * s).sum(-2) / self.instance.P**2
            return full - self.gram_diag * self.gram_diag * v
        if "rows" not in self._cache:
            masks = block_masks(self.instance.D, self.h.device)
            groups = [masks["A"].to(self.h.dtype), masks["B"].to(self.h.dtype)]
            rows = [
                hutchinson_row_sums(self.instance, self.n_probes, self.probe_seed + k, g)
                for k, g in enumerate(groups)
            ]
            self._cache["rows"] = (rows, groups, [g.sum() for g in groups])
        rows, groups, sizes = self._cache["rows"]
        return sum(r * ((v * g).sum(-1, keepdim=True) / k) for r, g, k in zip(rows, groups, sizes))


def _check_dense_memory(instance: Instance, solver) -> None:
    """Refuse (ResourceError) before building the dense n x n matrices if they cannot fit."""
    from ..resources import check_memory, dense_solve_bytes

    batch = math.prod(instance.batch_shape)
    need = dense_solve_bytes(instance.D, 1, 0, solver.name, batch=batch)  # the n x n matrices
    check_memory(
        need,
        f"{solver.name} solve of D={instance.D} ({instance.n} spins, batch {batch})",
        "use backend='matfree' (matrix-free solvers) or a smaller D",
        device=instance.u.device,
    )


def operators_for(problem: Any, solver, backend: str = "auto", **options) -> Operators:
    """The :class:`Operators` of ``problem`` for ``solver`` (a registered
    :class:`~spinglass_icl.solvers.Solver`).

    ``problem`` is an :class:`Operators` (used as it is), or an
    :class:`~spinglass_icl.hamiltonian.Instance`: ``backend="auto"`` or ``"dense"``
    builds :class:`DenseOperators` (refused with ResourceError if they cannot fit),
    ``"matfree"`` :class:`MatrixFreeOperators` (``options``: ``variance_term``,
    ``n_probes``, ``probe_seed``). A batch of factors in pair form is built by
    :meth:`PairOperators.of_factors` (or :class:`~spinglass_icl.solvers.lowrank.PairSystem`).
    """
    check_choice("backend", backend, ("auto", "dense", "pair", "matfree"))
    if isinstance(problem, Operators):
        if backend not in ("auto", problem.backend) or options:
            raise ParameterError(
                f"backend must be auto or {problem.backend!r} (and no backend options) for "
                f"operators built already, got {backend!r}"
                + (f" with {', '.join(sorted(options))}" if options else "")
            )
        return problem
    if not isinstance(problem, Instance):
        raise ParameterError(
            f"instance must be a spinglass_icl Instance, got {type(problem).__name__}"
        )
    if problem.lam <= 0:
        raise ParameterError(
            f"lam must be > 0 for the Boltzmann solvers (got lam={problem.lam:g}): at lam = 0 "
            "the spins of W's last column are free and the measure is not normalizable"
        )
    if backend == "matfree":
        get_solver(solver.name, need="matrix_free")
        return MatrixFreeOperators.of(problem, **options)
    if backend == "pair":
        raise ParameterError(
            "backend must be auto, dense or matfree for an Instance, got 'pair' (build "
            "PairOperators.of_factors from the factors)"
        )
    if options:
        raise ParameterError(
            f"backend options ({', '.join(sorted(options))}) need backend='matfree', "
            f"got backend={backend!r}"
        )
    _check_dense_memory(problem, solver)
    return DenseOperators.of(problem)
