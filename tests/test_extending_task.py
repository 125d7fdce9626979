"""The one-file extension example for task distributions runs end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "extending" / "new_task.py"


def test_example_is_one_short_file_of_public_names():
    text = EXAMPLE.read_text()
    assert len(text.splitlines()) < 200
    assert "spinglass_icl._" not in text and "import _" not in text


def test_new_task_example_runs():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--json"],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["amp_vs_exact"] < 1e-6  # AMP's mean is the exact ground state
    assert abs(out["mc"] - out["exact"]) < 4 * out["mc_se"]  # MC vs closed form
    assert out["pool_idg"] < out["pool_icl"]  # a pool of 3 is memorized
    assert len(out["sweep"]) == 2 and all(math.isfinite(e) for _, e in out["sweep"])
    assert out["sla"] == pytest.approx(out["exact"], rel=0.02)  # trained SLA near the ground state
