"""The resumable trial store: chunks stored as they finish, resumed, kept apart by key."""

import dataclasses

import numpy as np
import pytest

from spinglass_icl import ConfigError
from spinglass_icl.training import TrainConfig, train
from spinglass_icl.trials import CODE_VERSION, TrialStore, chunk_key, run_chunks

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = TrainConfig.of(model="sla", D=3, N=5, P=64, lam=0.05, trials=6, epochs=30, test_tasks=100)


class Interrupt(Exception):
    pass


def _compute(calls, stop_after=None):
    def compute(first, n):
        if stop_after is not None and len(calls) >= stop_after:
            raise Interrupt
        calls.append(first)
        res = train(dataclasses.replace(CFG, first_trial=first, trials=n))
        return {"err": res.test_error.relative.numpy(), "epochs": res.epochs_run.numpy()}

    return compute


def test_interrupted_run_resumes_without_retraining(tmp_path):
    chunks = [(0, 2), (2, 2), (4, 2)]
    spec = CFG.to_dict()
    ref = run_chunks(None, spec, 6, chunks, _compute([]))
    store = TrialStore(tmp_path / "t.sqlite")
    calls: list = []
    with pytest.raises(Interrupt):  # killed after the second chunk
        run_chunks(store, spec, 6, chunks, _compute(calls, stop_after=2))
    assert calls == [0, 2] and len(store) == 2
    calls2: list = []
    again = run_chunks(TrialStore(tmp_path / "t.sqlite"), spec, 6, chunks, _compute(calls2))
    assert calls2 == [4]  # finished chunks were read back, not retrained
    for k in ref:
        np.testing.assert_array_equal(again[k], ref[k])
    # one batched run of all trials gives the same numbers (trial k depends on (seed, k))
    np.testing.assert_allclose(ref["err"], train(CFG).test_error.relative.numpy(), rtol=1e-9)
    # a third run computes nothing
    calls3: list = []
    run_chunks(store, spec, 6, chunks, _compute(calls3))
    assert calls3 == []


def test_keys_keep_trials_seeds_and_code_versions_apart(tmp_path):
    spec = CFG.to_dict()
    base = chunk_key(spec, 6, 0, 2)
    assert base == chunk_key(dict(spec), 6, 0, 2)
    others = {
        chunk_key(spec, 4, 0, 2),  # another --trials
        chunk_key({**spec, "seed": 1}, 6, 0, 2),  # another seed
        chunk_key(spec, 6, 0, 2, code=CODE_VERSION + "x"),  # another code version
        chunk_key(spec, 6, 2, 2),
    }
    assert base not in others and len(others) == 4
    store = TrialStore(tmp_path / "t.sqlite")
    calls: list = []
    run_chunks(store, spec, 6, [(0, 2)], _compute(calls))
    run_chunks(store, spec, 4, [(0, 2)], _compute(calls))  # --trials 4: its own chunk
    assert calls == [0, 0] and len(store) == 2


def test_a_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_bytes(b"not a database at all" * 10)
    with pytest.raises(ConfigError, match="is not a trial store"):
        TrialStore(bad)
    assert bad.read_bytes() == b"not a database at all" * 10


@pytest.mark.parametrize("figure", ["fig4b", "fig6"])
def test_killed_figure_resumes_inside_training(tmp_path, monkeypatch, figure):
    """A figure killed in the middle of its training resumes at the first unfinished chunk:
    the rerun retrains nothing that was stored and gives the numbers of an uninterrupted
    run; another --trials count gets chunks of its own (never mixed)."""
    from spinglass_icl import training
    from spinglass_icl.experiments.runner import run_figure

    opts = dict(preset="tiny", progress=False, executor="serial", workers=1)
    if figure == "fig6":
        opts["params"] = {"models": ["sla", "fla"], "epochs": 20}
    ref = run_figure(figure, tmp_path / "ref", **opts)["numbers"]
    real = training.train
    calls: list = []

    def counting(cfg, *a, **kw):
        calls.append((cfg.model, cfg.lam, cfg.task.N, cfg.first_trial))
        if stop is not None and len(calls) > stop:
            raise KeyboardInterrupt
        return real(cfg, *a, **kw)

    monkeypatch.setattr(training, "train", counting)
    stop = 3
    with pytest.raises(KeyboardInterrupt):
        run_figure(figure, tmp_path / "run", **opts)
    done = calls[:stop]
    calls.clear()
    stop = None
    again = run_figure(figure, tmp_path / "run", **opts)["numbers"]
    assert not set(done) & set(calls), "a stored chunk was retrained"
    assert len(done) + len(calls) == len(set(done) | set(calls))
    assert again == ref
    n_full = len(done) + len(calls)
    calls.clear()
    two = run_figure(figure, tmp_path / "run", trials=1, **opts)
    assert two["trials"] == 1 and two["trials_override"] == 1
    assert len(calls) > 0  # nothing reused from the 2-or-3-trial run
    fresh = run_figure(figure, tmp_path / "fresh", trials=1, **opts)["numbers"]
    assert two["numbers"] == fresh
    assert n_full > 3  # the interrupt came before the end


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["fig4b", "--trials", "0"], "trials must be an integer >= 1, got 0"),
        (["fig4b", "--trials=-2"], "trials must be an integer >= 1, got -2"),
        (["fig6", "--trials", "2.5"], "trials must be an integer >= 1, got '2.5'"),
        (["fig1", "--trials", "3"], "trials: figure fig1 has no trials"),
    ],
)
def test_reproduce_trials_bad_input_is_one_line(tmp_path, capsys, argv, msg):
    from spinglass_icl.cli import main

    rc = main(["reproduce", *argv, "--preset", "tiny", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1
    assert not (tmp_path / "o" / argv[0]).exists()


def test_reproduce_trials_is_recorded(tmp_path):
    import json

    from spinglass_icl.cli import main

    out = tmp_path / "o"
    args = ["reproduce", "fig4b", "--preset", "tiny", "--out", str(out), "--no-progress"]
    assert main([*args, "--trials", "2"]) == 0
    rec = json.loads((out / "fig4b" / "result.json").read_text())
    assert rec["trials"] == 2 and rec["trials_override"] == 2 and rec["params"]["trials"] == 2
    assert rec["numbers"]["trials"] == 2
    assert len(rec["numbers"]["sgd_lam0.01_epochs_run_mean"]) == len(rec["params"]["N_list"])
