"""Drawing instances as their rank-one factors (``sampler = "factors"``): the
law of ``(u, q, y~)`` without the prompts equals that of the prompts' factors, moment
by moment and through solved instances; the sweep paths agree on it."""

from __future__ import annotations

import math

import pytest
import torch

from spinglass_icl.conventions import get_convention
from spinglass_icl.errors import ParameterError
from spinglass_icl.solvers.matfree import make_lowrank_instance
from spinglass_icl.sweep import SweepSpec, run_sweep
from spinglass_icl.sweep.plan import plan_chunks
from spinglass_icl.sweep.rows import run_chunk, spec_fields
from spinglass_icl.tasks import (
    NESTED_BLOCK,
    draw_factors,
    make_generator,
    sample_factors,
    sample_factors_nested,
    sample_prompts,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _per_prompt_stats(f) -> torch.Tensor:
    """Per-prompt statistics whose means pin the law of (u, q, y~) to fourth order:
    u, u u^T, u q^T y~ (the fields), y~^2, u^4, (u.q)^2, u_0 u_D y~ q_0."""
    u, q, y = f.u, f.q, f.y
    P = u.shape[0]
    return torch.cat(
        [
            u,
            (u[:, :, None] * u[:, None, :]).reshape(P, -1),
            (u[:, :, None] * (y[:, None, None] * q[:, None, :])).reshape(P, -1),
            (y * y)[:, None],
            u**4,
            ((u * q).sum(-1) ** 2)[:, None],
            u[:, :1] * u[:, -1:] * y[:, None] * q[:, :1],
        ],
        dim=1,
    )


@pytest.mark.parametrize(
    ("D", "N", "noise", "convention"),
    [
        (3, 4, 0.0, "authors"),
        (3, 4, 0.7, "authors"),
        (2, 1, 0.5, "paper-text"),
        (4, 9, 0.0, "normalized"),
    ],
)
def test_factor_law_equals_the_prompts_factor_law(D, N, noise, convention):
    P = 100_000
    a = _per_prompt_stats(
        sample_prompts(D, N, P, noise=noise, convention=convention, seed=1).factors()
    )
    b = _per_prompt_stats(sample_factors(D, N, P, noise=noise, convention=convention, seed=2))
    se = ((a.var(0) + b.var(0)) / P).sqrt()
    live = se > 0  # entries with q_D = 0 are identically 0 in both
    z = (a.mean(0) - b.mean(0))[live] / se[live]
    assert z.numel() > 20
    assert float(z.abs().max()) < 5.0, f"max |z| = {float(z.abs().max()):.2f}"
    # and the known first moments: E u_D = E sum_i y_i^2 = N (s^2 D + noise^2)
    s2 = get_convention(convention).label_scale(D) ** 2
    f = sample_factors(D, N, P, noise=noise, convention=convention, seed=3)
    uD = f.u[:, -1]
    assert float(uD.mean()) == pytest.approx(
        N * (s2 * D + noise**2), abs=5 * float(uD.std()) / math.sqrt(P)
    )


def test_factor_structure_seeds_and_batches():
    f = sample_factors(5, 7, 30, seed=4, batch_shape=(2,))
    assert f.u.shape == f.q.shape == (2, 30, 6) and f.y.shape == (2, 30)
    assert torch.all(f.q[..., -1] == 0) and torch.all(f.u[..., -1] > 0)
    assert f.features().shape == (2, 30, 36)
    again = sample_factors(5, 7, 30, seed=4, batch_shape=(2,))
    assert torch.equal(f.u, again.u) and torch.equal(f.y, again.y)
    assert not torch.equal(sample_factors(5, 7, 30, seed=5).u, f.u[0])
    assert sample_factors(5, 7, 3, seed=4, dtype=torch.float32).u.dtype == torch.float32
    g = make_generator(8)
    one = sample_factors(5, 7, 3, generator=g)
    two = sample_factors(5, 7, 3, generator=g)
    assert not torch.equal(one.u, two.u)  # the generator goes on
    # nested: prefix property, as for prompts
    big = sample_factors_nested(3, 4, 3 * NESTED_BLOCK, seed=9)
    for small in (1, NESTED_BLOCK, NESTED_BLOCK + 5):
        part = sample_factors_nested(3, 4, small, seed=9)
        assert torch.equal(part.u, big.u[:small]) and torch.equal(part.y, big.y[:small])
    with pytest.raises(ParameterError, match="sampler must be one of"):
        draw_factors(3, 4, 5, sampler="wishart")
    with pytest.raises(ParameterError, match="D must be"):
        sample_factors(0, 4, 5)


def test_prompts_factors_are_the_prompts_features():
    pr = sample_prompts(4, 6, 20, seed=0)
    assert torch.equal(pr.factors().features(), pr.features())
    lr = make_lowrank_instance(4, 6, 20, 1.0, seed=0, sampler="factors")
    assert torch.equal(lr.u, sample_factors(4, 6, 20, seed=0).u)


def test_sweep_with_factor_sampler_keys_paths_and_statistics(tmp_path):
    """Rows of a factor-sampled sweep: own keys; loop == batched == nested chain on it;
    and the mean exact-solution test error and contrast agree with the prompt-sampled
    sweep within 4 standard errors (40 independent instances each)."""
    base = dict(
        grid={"P": [40, 90]},
        fixed={"D": 4, "N": 8, "lam": 1.0, "solver": "exact"},
        repeats=40,
        seed=2,
    )
    fac = SweepSpec(**base, sampler="factors")
    pro = SweepSpec(**base)
    assert {t.key for t in fac.tasks()}.isdisjoint({t.key for t in pro.tasks()})
    assert "sampler" not in pro.to_dict() and fac.to_dict()["sampler"] == "factors"
    assert SweepSpec.from_toml(_toml(tmp_path, fac)) == fac
    rows = {}
    for name, spec in (("fac", fac), ("pro", pro)):
        st = run_sweep(spec, tmp_path / f"{name}.sqlite", executor="serial", progress=False)
        rows[name] = st.rows()
        st.close()
    for P in (40, 90):
        for key in ("relative_test_error", "contrast"):
            a = torch.tensor([r[key] for r in rows["fac"] if r["P"] == P], dtype=torch.float64)
            b = torch.tensor([r[key] for r in rows["pro"] if r["P"] == P], dtype=torch.float64)
            se = math.sqrt(float(a.var() / len(a) + b.var() / len(b)))
            assert abs(float(a.mean() - b.mean())) < 4 * se, (P, key)
    # the sweep's three paths on the factor sampler (AMP, a few rows)
    spec = SweepSpec(
        grid={"P": [40, 90], "N": [6, 12]},
        fixed={"D": 4, "lam": 3.0, "solver": "amp"},
        repeats=2,
        seed=1,
        solver_options={"damping": 0.5, "tol": 1e-9},
        sampler="factors",
    )
    fields = spec_fields(spec)
    tasks = spec.tasks()
    loop = {r["key"]: r for t in tasks for r in run_chunk([t], fields, batched=False)}
    batched = {r["key"]: r for c in plan_chunks(tasks) for r in run_chunk(c, fields)}
    nspec = SweepSpec(**{**spec.to_dict(), "nested_p": True})
    nfields = spec_fields(nspec)
    ntasks = nspec.tasks()
    nloop = {r["key"]: r for t in ntasks for r in run_chunk([t], nfields, batched=False)}
    chain = {r["key"]: r for c in plan_chunks(ntasks, nested=True) for r in run_chunk(c, nfields)}
    for ref, other in ((loop, batched), (nloop, chain)):
        assert ref.keys() == other.keys()
        for k, r in ref.items():
            assert r["converged"] and other[k]["n_iter"] == r["n_iter"]
            assert other[k]["contrast"] == pytest.approx(r["contrast"], rel=1e-10)


def _toml(tmp_path, spec):
    path = tmp_path / "spec.toml"
    spec.to_toml(path)
    assert 'sampler = "factors"' in path.read_text()
    return path
