"""The dense CPU operators' BLAS kernels give the same numbers on every path they can take."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.linalg.blas as blas
import torch

from spinglass_icl import solve
from spinglass_icl.hamiltonian import make_instance
from spinglass_icl.solvers import DenseOperators, Operators, _blas


def _symmetric(n: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=dtype)
    return (A + A.T).contiguous()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gil_free", [True, False])
def test_symv_equals_scipys_symv_bit_for_bit(dtype, gil_free):
    """Both ways of calling SciPy's ?symv are that routine: equal to the last bit, and to
    the general product up to rounding."""
    M, x = _symmetric(97, dtype), _symmetric(97, dtype, 1)[0].clone()
    k = _blas.symv_kernel(M, gil_free=gil_free)
    assert k is not None
    fn = blas.dsymv if dtype == torch.float64 else blas.ssymv
    expect = fn(1.0, M.numpy().T, x.numpy())
    got = k(x)
    assert got.dtype == dtype and np.array_equal(got.numpy(), expect)
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(got, M @ x, rtol=tol, atol=tol * float((M @ x).abs().max()))


def test_symv_takes_only_one_cpu_matrix():
    M = _symmetric(8)
    assert _blas.symv_kernel(M.to(torch.float16)) is None
    assert _blas.symv_kernel(torch.stack([M, M])) is None
    assert _blas.symv_kernel(M.T[:, :7]) is None  # not contiguous
    k = _blas.symv_kernel(M)
    X = _symmetric(8, seed=2)[:3]  # a batch of vectors: the row product
    torch.testing.assert_close(k(X), X @ M, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("threads", [1, 2])
def test_symv_pair_equals_the_products_in_turn(threads):
    """At once on two threads (torch threads > 1) or in turn: the same bits."""
    A, B = _symmetric(150), _symmetric(150, seed=1) ** 2
    x, y = _symmetric(150, seed=2)[0].clone(), _symmetric(150, seed=3)[0].clone()
    a, b = _blas.symv_kernel(A), _blas.symv_kernel(B)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(3):
            ax, by = _blas.symv_pair(a, x, b, y)
            assert torch.equal(ax, a(x)) and torch.equal(by, b(y))
    finally:
        torch.set_num_threads(old)


def test_symv_restores_the_blas_thread_count():
    pools = _blas.scipy_blas_pools()
    if not pools:
        pytest.skip("threadpoolctl finds no SciPy BLAS here")
    before = [c.num_threads for c in pools]
    k = _blas.symv_kernel(_symmetric(16))
    k(_symmetric(16, seed=1)[0].clone())
    _blas.symv_pair(k, _symmetric(16, seed=2)[0].clone(), k, _symmetric(16, seed=3)[0].clone())
    assert [c.num_threads for c in pools] == before


def test_a_forked_child_gets_its_own_worker_thread(monkeypatch):
    """The worker thread does not survive fork: one recorded under another process id
    (the parent's, seen from a forked child) is replaced, not used."""
    stale = _blas.ThreadPoolExecutor(1)
    stale.shutdown()
    monkeypatch.setattr(_blas, "_WORKER", (os.getpid() + 1, stale))
    worker = _blas._worker()
    assert worker is not stale and _blas._WORKER == (os.getpid(), worker)
    assert worker.submit(lambda: 3).result(timeout=10) == 3


@pytest.mark.parametrize("solver", ["amp", "amp-paper"])
def test_dense_amp_products_equal_the_generic_ones(solver):
    """The dense operators' paired products give the AMP solve of the generic rule (each
    product on its own) to the last bit, and J^2 equals G o G with a zero diagonal."""
    inst = make_instance(10, 10, 200, 1.0, seed=0)
    ops = DenseOperators.of(inst)
    G = inst.gram
    J2 = G * G
    J2.diagonal().zero_()
    assert torch.equal(ops.j2, J2)
    m, v = inst.fields.clone(), 1.0 / inst.lam_i
    Jm, J2v = ops.amp_products(m, v)
    assert torch.equal(Jm, ops.couplings_matvec(m)) and torch.equal(J2v, ops.j2_matvec(v))
    assert ops.amp_products(m, None)[1] is None
    fast = solve(inst, solver, tol=1e-10)
    generic = DenseOperators.of(inst)
    object.__setattr__(generic, "amp_products", lambda m, v: Operators.amp_products(generic, m, v))
    slow = solve(generic, solver, tol=1e-10)
    assert fast.status == "converged" and slow.status == "converged"
    assert torch.equal(fast.m, slow.m) and torch.equal(fast.v, slow.v)
    assert int(fast.n_iter) == int(slow.n_iter)
