"""One seed derivation (spinglass_icl.seeds): the values of before, bit for bit, and no
other module deriving seeds its own way."""

from __future__ import annotations

import ast
from pathlib import Path

import spinglass_icl
from spinglass_icl import seeds
from spinglass_icl.diversity import _seed as diversity_seed
from spinglass_icl.experiments.double_descent import point_seed
from spinglass_icl.sweep import SweepSpec, derive_seed
from spinglass_icl.tasks import _block_seed
from spinglass_icl.training import TrainConfig, _restart_generators, trial_seed

DATA = {"D": 4, "N": 5, "P": 6, "convention": "authors", "noise": 0.0}


def test_derive_is_the_sweeps_and_figures_seed_of_before():
    # values computed by the code of before (sweep.spec.derive_seed, diversity._seed,
    # training.trial_seed), which stored sweeps, trials and published numbers used
    assert derive_seed is seeds.derive
    assert seeds.derive("instance", 3, DATA, 1) == 5864448975321390686
    fig = seeds.derive("figure", "fig2", "train", 0, "authors", {"D": 10, "N": 100, "P": 10})
    assert fig == 592869991354770362
    assert 0 <= seeds.derive("x") < 2**seeds.SEED_BITS


def test_the_kept_derivations_are_bit_for_bit_those_of_before():
    assert diversity_seed(0, 8, 2, "pool") == seeds.joined("task-diversity", 0, 8, 2, "pool")
    assert diversity_seed(0, 8, 2, "pool") == 952147900634512881
    assert diversity_seed(0, "contexts") == 1145095728467257443
    assert (trial_seed(3, 0, 1), trial_seed(0, 5, 2)) == (3578933982, 1950057878)
    assert seeds.trial_stream(7, 2, 1, 3) == 4136298153  # restart 3 of trial 2
    assert _block_seed(3, 2) == seeds.joined("nested-prompts", 3, 2) == 1000453593395371205


def test_rows_points_and_restarts_draw_from_the_one_scheme():
    spec = SweepSpec(grid={"lam": [0.5, 2.0]}, fixed={"D": 4, "N": 5, "P": 6}, seed=3)
    for t in spec.tasks():
        assert t.seed == seeds.derive("instance", 3, DATA, t.repeat)
        assert t.test_seed == seeds.derive("test", 3, {k: v for k, v in DATA.items() if k != "P"})
    assert point_seed(5, 4, 5, 6, "authors") == seeds.derive("double-descent", 5, DATA)
    cfg = TrainConfig.of(D=3, N=4, P=8, seed=7, trials=2, first_trial=1, restarts=2)
    gens = _restart_generators(cfg, 1)
    want = [seeds.trial_stream(7, k, 1, *([r] if r else [])) for k in (1, 2) for r in (0, 1)]
    assert [g.initial_seed() for g in gens] == want


def _names(tree: ast.AST) -> set[str]:
    """Every name and attribute the code uses (not its docstrings)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
    return out


def test_no_other_module_derives_seeds():
    root = Path(spinglass_icl.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path.name == "seeds.py":
            continue
        used = _names(ast.parse(path.read_text()))
        for word in ("SeedSequence", "_SEED_MASK", "sha256"):
            if word in used and not (word == "sha256" and path.name == "storage.py"):
                raise AssertionError(f"{path.relative_to(root)} uses {word}: use seeds.derive")
    assert "SeedSequence" in _names(ast.parse(Path(seeds.__file__).read_text()))
