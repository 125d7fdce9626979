"""Smoke test: the README pipeline composes end to end."""

import torch

import spinglass_icl as sg


def test_pipeline_composes():
    prompts = sg.sample_prompts(D=4, N=20, P=200, seed=0)
    inst = sg.build_instance(prompts, lam=1.0)
    res = sg.solve(inst, "amp", beta=100.0)
    assert res.converged
    W = sg.spins_to_W(res.m)
    assert W.shape == (5, 5)
    assert torch.isfinite(sg.contrast(W))
