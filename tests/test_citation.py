"""Citable and licensed: CITATION.cff against the Citation File Format 1.2.0 schema,
the LICENSE file, the SPDX license in pyproject.toml, and one version everywhere.

The schema (tests/data/citation-file-format-1.2.0.schema.json) is the one published at
https://citation-file-format.github.io/1.2.0/schema.json (CC-BY-4.0), as shipped by
``cffconvert``; the check runs offline (``cffconvert --validate`` gives the same verdict).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

import spinglass_icl as sg

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).parent / "data" / "citation-file-format-1.2.0.schema.json"


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text())


@pytest.fixture(scope="module")
def cff() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_citation_cff_is_valid_cff_1_2_0(cff, validator):
    errors = sorted(validator.iter_errors(cff), key=str)
    assert not errors, "\n".join(e.message for e in errors)


def test_the_schema_check_catches_a_broken_file(cff, validator):
    broken = copy.deepcopy(cff)
    del broken["authors"]
    broken["references"][0]["type"] = "tweet"
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("'authors' is a required property" in m for m in messages)
    assert any("'tweet' is not one of" in m for m in messages)


def test_citation_cites_the_package_and_both_papers(cff):
    assert cff["type"] == "software" and cff["license"] == "MIT"
    assert cff["version"] == sg.__version__
    refs = {r["identifiers"][0]["value"]: r for r in cff["references"]}
    assert set(refs) == {"arXiv:2408.02288", "arXiv:2405.11751"}
    li = [a["family-names"] for a in refs["arXiv:2408.02288"]["authors"]]
    lu = [a["family-names"] for a in refs["arXiv:2405.11751"]["authors"]]
    assert li == ["Li", "Bai", "Huang"]
    assert lu == ["Lu", "Letey", "Zavatone-Veth", "Maiti", "Pehlevan"]


def test_license_file_and_spdx_expression():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "spinglass-icl developers" in text
    project = _toml(ROOT / "pyproject.toml")
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    requires = project["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in requires)


def test_one_version_everywhere():
    from spinglass_icl._version import __version__ as source

    assert sg.__version__ == source
    out = subprocess.run(
        [sys.executable, "-m", "spinglass_icl", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == f"spinglass-icl {source}"


def test_outputs_record_the_version_beside_the_convention(tmp_path):
    """result.json, results.json, report.md, a figure's data.nc, a sweep store's meta and
    its NetCDF export, and the CLI's summary.json all say which version made them."""
    import xarray as xr

    from spinglass_icl.cli import main
    from spinglass_icl.experiments.report import build_report
    from spinglass_icl.experiments.runner import run_figure
    from spinglass_icl.sweep import SweepSpec, run_sweep

    v = sg.__version__
    rec = run_figure("hessian", tmp_path / "rep", preset="tiny", progress=False)
    assert (rec["convention"], rec["version"]) == ("authors", v)
    paths = build_report(tmp_path / "rep")
    assert json.loads(paths["json"].read_text())["figures"]["hessian"]["version"] == v
    assert f"convention `authors`, spinglass-icl {v}," in paths["md"].read_text()
    ncs = sorted((tmp_path / "rep" / "hessian").glob("*.nc"))
    assert ncs
    for nc in ncs:
        with xr.open_dataset(nc) as ds:
            assert ds.attrs["spinglass_icl_version"] == v

    spec = SweepSpec(
        grid={"P": [20]}, fixed={"D": 2, "N": 4, "lam": 1.0, "solver": "exact"}, repeats=1
    )
    with run_sweep(spec, tmp_path / "s.sqlite", executor="serial", progress=False) as st:
        assert st.meta()["version"] == st.meta()["created_version"] == v
        attrs = st.to_xarray().attrs
    assert (attrs["conventions"], attrs["spinglass_icl_version"]) == ("authors", v)
    assert attrs["store_version"] == v

    out = tmp_path / "solve"
    argv = ["solve", "--D", "2", "--N", "4", "--P", "20", "--solver", "exact", "--out", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "summary.json").read_text())["config"]
    assert (config["convention"], config["version"]) == ("authors", v)
