"""The batched kernels of solvers/lowrank.py against the per-instance solvers."""

from __future__ import annotations

import pytest
import torch

from spinglass_icl.hamiltonian import make_instance
from spinglass_icl.solvers import solve

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("lowrank_matvec", [True, False])
def test_batched_amp_kernel_equals_core_amp(lowrank_matvec):
    from spinglass_icl.hamiltonian import gram_from_factors as lowrank_couplings
    from spinglass_icl.solvers.lowrank import solve_amp_batched
    from spinglass_icl.tasks import sample_prompts

    D, P, lam = 4, 150, 1.0
    prs = [sample_prompts(D, N, P, seed=s) for s, N in enumerate([3, 6, 9])]
    u = torch.stack([pr.u * pr.config.prefactor for pr in prs])
    q = torch.stack([pr.q for pr in prs])
    y = torch.stack([pr.y for pr in prs])
    insts = [make_instance(D, pr.config.N, P, lam, seed=s) for s, pr in enumerate(prs)]
    G = lowrank_couplings(u, q, 1.0)
    for i, inst in enumerate(insts):
        torch.testing.assert_close(G[i], inst.gram, rtol=1e-12, atol=1e-15)
    for onsager in (True, False):
        res = solve_amp_batched(
            u, q, y, 1.0, lam, 100.0, onsager=onsager, damping=0.5, tol=1e-10,
            lowrank_matvec=lowrank_matvec,
        )  # fmt: skip
        for i, inst in enumerate(insts):
            ref = solve(inst, "amp" if onsager else "amp-paper", damping=0.5, tol=1e-10,
                        warn=False)  # fmt: skip
            assert res.status[i] == ref.status and int(res.n_iter[i]) == ref.n_iter
            torch.testing.assert_close(res.m[i], ref.m, rtol=1e-10, atol=1e-13)
            torch.testing.assert_close(res.v[i], ref.v, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("solver", ["exact", "amp", "amp-paper", "rbp"])
def test_solve_factors_equals_per_instance_solve(solver):
    """Every solver on the pair Gram form of a batch equals solve() instance by instance."""
    from spinglass_icl.hamiltonian import build_instance
    from spinglass_icl.solvers import SolverConfig
    from spinglass_icl.solvers.lowrank import solve_factors
    from spinglass_icl.tasks import sample_prompts

    cfg = SolverConfig(solver=solver, beta=100.0, damping=0.5, tol=1e-10, max_iter=5000)
    insts = [
        build_instance(sample_prompts(3, 10, 80, convention="paper-text", seed=s), 2.0)
        for s in range(3)
    ]
    u = torch.stack([i.u * i.c for i in insts])
    res = solve_factors(
        u, torch.stack([i.q for i in insts]), torch.stack([i.y for i in insts]), 1.0, 2.0, cfg
    )
    assert res.m.shape == (3, 16) and res.converged.shape == (3,) and res.status.shape == (3,)
    for k, inst in enumerate(insts):
        one = solve(inst, cfg)
        assert res.status[k] == one.status == "converged"
        torch.testing.assert_close(res.m[k], one.m, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(res.v[k], one.v, rtol=1e-9, atol=1e-12)


def test_pair_system_extended_in_segments_equals_one_pass():
    """Pair sums over disjoint prompt sets add up: a system grown 10 + 30 prompts has the
    pair Gram matrix, fields and diagonal of the 40 prompts at once (to rounding)."""
    from spinglass_icl.hamiltonian import build_instance, pair_gram
    from spinglass_icl.solvers.lowrank import PairSystem
    from spinglass_icl.tasks import sample_prompts

    inst = build_instance(sample_prompts(3, 10, 40, seed=1, batch_shape=(2,)), 0.5)
    u = inst.u * inst.c
    system = PairSystem.empty(2, 4, device=u.device, dtype=u.dtype)
    for lo, hi in ((0, 10), (10, 40)):
        system.extend(u[:, lo:hi], inst.q[:, lo:hi], inst.y[:, lo:hi])
    Gs, h, gd = system.normalized()
    torch.testing.assert_close(Gs, pair_gram(u, inst.q, 1.0), rtol=1e-13, atol=1e-16)
    torch.testing.assert_close(h, inst.fields, rtol=1e-12, atol=1e-16)
    torch.testing.assert_close(gd, inst.gram_diag, rtol=1e-12, atol=1e-16)


def test_solver_results_concatenate_in_order():
    from spinglass_icl.solvers import SolverResult

    a = solve(
        make_instance(3, 10, 80, 2.0, convention="paper-text", seed=0, batch_shape=(2,)), "amp"
    )
    b = solve(make_instance(3, 10, 80, 2.0, seed=1), "exact")
    c = SolverResult.cat([a, b])
    assert c.m.shape == (3, 16) and c.status.tolist() == ["converged"] * 3
    assert torch.equal(c.m[:2], a.m) and torch.equal(c.m[2], b.m)
    assert c.n_iter.tolist() == [*a.n_iter.tolist(), 0]
    assert c.residuals.shape[1] == 3 and torch.isnan(c.residuals[:, 2]).all()
