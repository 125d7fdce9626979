"""Sweep specs: grid expansion, derived seeds, TOML, validation, keys of old stores."""

from __future__ import annotations

import pytest

from spinglass_icl.errors import ConfigError, ParameterError
from spinglass_icl.sweep import SweepSpec, run_sweep
from sweep_helpers import SMALL, _write

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- spec and seeds
def test_spec_expands_and_seeds_are_deterministic():
    spec = SweepSpec(**SMALL)
    tasks = spec.tasks()
    assert spec.n_tasks == len(tasks) == 2 * 2 * 2
    assert len({t.key for t in tasks}) == len(tasks)
    # same spec, same seeds and keys; a different base seed changes every instance seed
    again = SweepSpec(**SMALL).tasks()
    assert [(t.key, t.seed, t.test_seed) for t in tasks] == [
        (t.key, t.seed, t.test_seed) for t in again
    ]
    other = SweepSpec(**{**SMALL, "seed": 4}).tasks()
    assert not {t.seed for t in tasks} & {t.seed for t in other}
    assert all(0 <= t.seed < 2**63 for t in tasks)
    # seeds depend on the data parameters only: lam does not change the instance
    a = SweepSpec(grid={"lam": [0.5, 2.0]}, fixed={"D": 3, "N": 4, "P": 20}).tasks()
    assert a[0].seed == a[1].seed and a[0].key != a[1].key


def test_spec_toml_round_trip(tmp_path):
    spec = SweepSpec(**{**SMALL, "solver_options": {"damping": 0.8, "tol": 1e-7}})
    path = tmp_path / "s.toml"
    spec.to_toml(path)
    back = SweepSpec.from_toml(path)
    assert back == spec and back.hash == spec.hash


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"grid": {"Q": [1]}}, "grid parameter must be one of"),
        ({"grid": {"D": [0]}, "fixed": {"N": 2, "P": 3, "lam": 1.0}}, "D must be an integer >= 1"),
        ({"fixed": {"D": 2, "N": 2, "P": 3}}, "lam must be given"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": -1}}, "lam must be > 0"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": 1, "solver": "sgd"}}, "solver must be one of"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": 1}, "repeats": 0}, "repeats must be"),
        ({"fixed": {"D": 2, "N": 2, "P": 3, "lam": 1}, "solver_options": {"eta": 1}}, "eta"),
    ],
)
def test_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SweepSpec(**kwargs)


def test_spec_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SweepSpec.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("grid = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        SweepSpec.from_toml(bad)
    bad.write_text("colour = 3\n[fixed]\nD = 2\n")
    with pytest.raises(ConfigError, match="unknown sweep spec key"):
        SweepSpec.from_toml(bad)


def test_test_error_option_keys_and_old_stores(tmp_path):
    """'mc' rows keep the keys of sweeps stored before the option; 'exact' rows differ;
    a spec stored without the field reads back as 'mc'."""
    import json

    exact, mc = SweepSpec(**SMALL), SweepSpec(**SMALL, test_error="mc")
    assert exact.test_error == "exact"
    assert not {t.key for t in exact.tasks()} & {t.key for t in mc.tasks()}
    assert SweepSpec.from_toml(_write(tmp_path / "m.toml", mc.to_toml())) == mc
    store = run_sweep(mc, tmp_path / "old.sqlite", executor="serial", progress=False)
    d = mc.to_dict()
    del d["test_error"]  # what a store written before the option holds
    store._con.execute("UPDATE specs SET spec = ?", (json.dumps(d),))
    store._con.commit()
    assert store.specs() == [mc] and len(store.rows()) == mc.n_tasks
    with pytest.raises(ParameterError, match="test_error must be one of"):
        SweepSpec(**SMALL, test_error="sampled")
