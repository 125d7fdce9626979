"""Per-cell cost of Fig. 4a at the paper preset, old design against the authors' grid.

    python benchmarks/fig4a_cost.py [--cells K] [--repeats R]

Times, on K x K evenly spaced cells of each grid (default 5 x 5, 10 repeats, serial
executor): the old design (20 x 20 geometric-P grid: the converged sweep A and the
stability prediction on every cell) and the new one on the authors' linear 50 x 50 grid
(A: ``amp-paper`` to 2000 steps at tol 1e-6 and exact, text contrast; B: the authors'
100-step cap at tol 1e-3 and exact, cosine contrast; the prediction, which the preset
computes on every 5th P and N only). Prints wall and CPU seconds per cell and the ratio
new / old of the whole figure, which scales the idle-machine time of a committed paper run
(benchmarks/RESULTS.md). Stores go to a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from spinglass_icl.experiments.amp_stability import predicted_convergence
from spinglass_icl.experiments.fig4a import grid, sweep_spec
from spinglass_icl.experiments.presets import get_preset
from spinglass_icl.sweep import run_sweep


def _every(values: list, k: int) -> list:
    step = max(1, len(values) // k)
    return values[::step][:k]


def _timed(f) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=5, help="K: K x K cells per grid")
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()
    paper = get_preset("paper", "fig4a").replace(repeats=a.repeats)
    old = paper.replace(grid=20, grid_kind="log")
    tmp = Path(tempfile.mkdtemp(prefix="fig4a_cost_"))
    rows, per = [], {}
    for name, p, authors, predict in (
        ("old A", old, False, False),
        ("old prediction", old, False, True),
        ("new A", paper, False, False),
        ("new B", paper, True, False),
        ("new prediction", paper, False, True),
    ):
        Ps, Ns = grid(p)
        spec = sweep_spec(p, "authors", 0, authors=authors)
        sub = {"P": _every(Ps, a.cells), "N": _every(Ns, a.cells)}
        spec = dataclasses.replace(spec, grid={**spec.grid, **sub})
        cells = len(sub["P"]) * len(sub["N"])
        if predict:
            w, c = _timed(lambda spec=spec, s=p.amp_solver: predicted_convergence(spec, s))
        else:
            store = tmp / f"{name.replace(' ', '_')}.sqlite"
            w, c = _timed(lambda spec=spec, store=store: run_sweep(
                spec, store, executor="serial", workers=1, progress=False))  # fmt: skip
        per[name] = (w / cells, c / cells)
        rows.append(f"{name:16s} {w / cells:8.3f} {c / cells:8.3f}   P {sub['P']} N {sub['N']}")
    print(f"# Fig. 4a cost per cell ({a.repeats} repeats), serial executor")
    print(f"{'part':16s} {'wall s':>8s} {'CPU s':>8s}")
    print("\n".join(rows))
    n_new = len(grid(paper)[0]) * len(grid(paper)[1])
    k = paper.predict_every  # the preset predicts on every k-th P and N, and the last
    n_pred = len(set(grid(paper)[0][::k]) | {grid(paper)[0][-1]}) * len(
        set(grid(paper)[1][::k]) | {grid(paper)[1][-1]}
    )
    for i, label in ((0, "wall"), (1, "CPU")):
        old_tot = 400 * (per["old A"][i] + per["old prediction"][i])
        new_tot = n_new * (per["new A"][i] + per["new B"][i]) + n_pred * per["new prediction"][i]
        print(f"whole figure new / old ({label}): {new_tot / old_tot:.2f}")


if __name__ == "__main__":
    main()
