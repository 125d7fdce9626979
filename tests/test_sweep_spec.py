"""Sweep specs: grid expansion, derived seeds, TOML, validation, keys of old stores."""

from __future__ import annotations

import pytest
import torch

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


# ------------------------------------------------------------------- task pools
#: a spec and its rows' (key, seed, test_seed) as computed by the package before task
#: pools existed: rows without a pool keep them bit for bit (old stores resume)
_PINNED_SPEC = dict(
    grid={"P": [20, 30]}, fixed={"D": 2, "N": 4, "lam": 1.0}, repeats=2, seed=1, test_tasks=50
)
_PINNED = [
    ("cb82006d75d395b37de88dc0dc9c69f6aefdab043843c632909f235ee5eaebee", 5805908240837789961),
    ("80e660bf73bed92cb19cede9f65479ec47613416e9e2dd53c8c4e44c952e51ce", 6041032322978576074),
    ("a978a20e52e0df756fbce977e21790f325c47d727e1d6fcddb9c41d9f74e4bb9", 5915046654952109333),
    ("266da37fc9e68a4cf9c7c0d8bd9ff728c9d659a11def22207d53e5494199090a", 1398508893348365126),
]
_PINNED_HASH = "5fd6da12b5beb8f61939b8ea064ab382a3919191208822533785332efb134461"


@pytest.mark.parametrize("tasks", ["absent", None, "none", "NONE", float("inf")])
def test_no_pool_keeps_the_keys_seeds_and_spec_hash_of_before(tasks):
    fixed = dict(_PINNED_SPEC["fixed"])
    if tasks != "absent":
        fixed["tasks"] = tasks
    spec = SweepSpec(**{**_PINNED_SPEC, "fixed": fixed})
    assert spec.fixed["tasks"] is None and spec.hash == _PINNED_HASH
    got = [(t.key, t.seed) for t in spec.tasks()]
    assert got == _PINNED
    assert {t.test_seed for t in spec.tasks()} == {5558066732697209051}
    assert all(t.law == () and t.pool_seed is None for t in spec.tasks())
    # and a nested, factor-sampled spec of before
    nested = SweepSpec(
        grid={"P": [64, 128]}, fixed={"D": 2, "N": 4, "lam": 1.0, "solver": "exact"},
        repeats=1, seed=1, nested_p=True, sampler="factors",
    )  # fmt: skip
    assert nested.hash == "d19f27c73db9e6a8c58a4b768b6f91156c17a538de6e66218d45b4d2435113f5"
    assert [t.key[:16] for t in nested.tasks()] == ["d6d8365aed810438", "de408d52a7a3981c"]


def test_pool_size_is_a_grid_axis_with_distinct_keys_and_nested_pools():
    spec = SweepSpec(
        grid={"tasks": [4, 16, None], "P": [32, 64]}, fixed={"D": 3, "N": 5, "lam": 0.5},
        repeats=2, seed=2,
    )  # fmt: skip
    tasks = spec.tasks()
    assert len({t.key for t in tasks}) == len(tasks) == 12
    by = {(t.params["tasks"], t.params["P"], t.repeat): t for t in tasks}
    # each repeat has its own pool, shared by every K and P of the repeat
    for r in range(2):
        assert by[(4, 32, r)].pool_seed == by[(16, 64, r)].pool_seed == spec.pool_seed_of(r)
        assert by[(None, 32, r)].pool_seed is None
    assert spec.pool_seed_of(0) != spec.pool_seed_of(1)
    # the instance seed changes with K; the test prompts (fresh tasks) are shared
    assert by[(4, 32, 0)].seed != by[(16, 32, 0)].seed != by[(None, 32, 0)].seed
    assert len({t.test_seed for t in tasks}) == 1
    # the row's TaskConfig holds the pool: the same at every P of the repeat
    cfg4, cfg4b = by[(4, 32, 0)].task_config, by[(4, 64, 0)].task_config
    assert (cfg4.tasks, cfg4.pool_seed, cfg4.assignment) == (4, spec.pool_seed_of(0), "uniform")
    assert torch.equal(cfg4.pool, cfg4b.pool) and cfg4.pool.shape == (4, 3)
    # the other pool options enter the keys
    other = SweepSpec(**{**spec.to_dict(), "pool_seed": 1})
    equal = SweepSpec(**{**spec.to_dict(), "assignment": "equal"})
    sphere = SweepSpec(**{**spec.to_dict(), "task_norm": "sphere"})
    keys = [{t.key for t in s.tasks() if t.params["tasks"]} for s in (spec, other, equal, sphere)]
    assert all(not a & b for i, a in enumerate(keys) for b in keys[i + 1 :])
    # without a pool only task_norm changes the law
    none_keys = [{t.key for t in s.tasks() if not t.params["tasks"]} for s in (spec, other, equal)]
    assert none_keys[0] == none_keys[1] == none_keys[2]
    assert sphere.tasks()[2].task_config.task_norm == "sphere"


def test_pool_toml_round_trip_and_none_spelling(tmp_path):
    text = """
repeats = 1
seed = 0
pool_seed = 5
assignment = "equal"
task_norm = "sphere"
[grid]
tasks = [8, 32, "none"]
[fixed]
D = 4
N = 8
P = 64
lam = 0.01
"""
    spec = SweepSpec.from_toml(_write(tmp_path / "pool.toml", text))
    assert spec.grid["tasks"] == [8, 32, None]
    assert (spec.pool_seed, spec.assignment, spec.task_norm) == (5, "equal", "sphere")
    assert 'tasks = [8, 32, "none"]' in spec.to_toml()
    back = SweepSpec.from_toml(_write(tmp_path / "back.toml", spec.to_toml()))
    assert back == spec and back.hash == spec.hash
    # inf (the K -> infinity limit) reads as none; a scalar is a one-value grid
    alt = SweepSpec.from_toml(_write(tmp_path / "inf.toml", text.replace('"none"', "inf")))
    assert alt == spec
    one = SweepSpec(**{**spec.to_dict(), "grid": {"tasks": 8}})
    assert one.grid == {"tasks": [8]}


@pytest.mark.parametrize(
    "tasks, extra, match",
    [
        (0, {}, r"tasks \(the task pool size K\) must be an integer >= 1 or 'none' .*got 0"),
        (-3, {}, r"must be an integer >= 1 or 'none' .*got -3"),
        (2.5, {}, r"must be an integer >= 1 or 'none' .*got 2.5"),
        ("many", {}, r"must be an integer >= 1 or 'none' .*got 'many'"),
        (True, {}, r"must be an integer >= 1 or 'none' .*got True"),
        (65, {"assignment": "equal"}, r"tasks must be <= P = 64 with assignment 'equal'.*got 65"),
        (8, {"matfree": True, "fixed_solver": "exact"}, "tasks must be 'none' when matfree"),
        (8, {"assignment": "turns"}, "assignment must be one of"),
        (8, {"task_norm": "ball"}, "task_norm must be one of"),
        (8, {"pool_seed": -1}, "pool_seed must be an integer >= 0"),
    ],
)
def test_bad_pool_sizes_and_options_are_one_line_errors(tasks, extra, match):
    extra = dict(extra)
    fixed = {"D": 4, "N": 8, "P": 64, "lam": 0.01, "tasks": tasks}
    if extra.pop("fixed_solver", None):
        fixed["solver"] = "exact"
    with pytest.raises(ParameterError, match=match) as exc:
        SweepSpec(fixed=fixed, **extra)
    assert "\n" not in str(exc.value)
    del fixed["tasks"]
    with pytest.raises(ParameterError, match=match):  # as a grid value too
        SweepSpec(grid={"tasks": [4, tasks]}, fixed=fixed, **extra)


def test_the_pool_example_spec_reads_and_expands():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "sweep-pool.toml"
    spec = SweepSpec.from_toml(path)
    assert spec.grid == {"tasks": [2, 4, 8, 16, 32, 64, None]}
    assert (spec.assignment, spec.task_norm, spec.fixed["solver"]) == ("equal", "sphere", "exact")
    assert spec.n_tasks == 28 and len({t.key for t in spec.tasks()}) == 28
