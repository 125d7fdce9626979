"""Tests of ``spinglass-icl theory``: table, JSON, lam mapping and one-line errors."""

from __future__ import annotations

import json

import pytest

from spinglass_icl.cli import main
from spinglass_icl.theory import lam_prime, ridge_error, ridgeless_error


def test_table_lists_every_point(capsys):
    assert main(["theory", "--alpha", "1", "2", "--tau", "0.5", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out[2:]]
    assert len(rows) == 4
    for r in rows:
        a, t, e = float(r[0]), float(r[1]), float(r[5])
        assert e == pytest.approx(ridgeless_error(a, t), rel=1e-5)  # lam = 0: ridgeless


def test_json_maps_our_lam(capsys):
    argv = ["theory", "--alpha", "1.5", "--tau", "0.3", "1", "4", "--lam", "0.02"]
    assert main([*argv, "--D", "10", "--convention", "paper-text", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["convention"] == "paper-text" and doc["params"]["D"] == 10
    rows = doc["rows"]
    assert [r["tau"] for r in rows] == [0.3, 1.0, 4.0]
    for r in rows:
        assert r["N"] == 15 and r["P"] == round(r["tau"] * 100)
        assert r["lam_prime"] == pytest.approx(lam_prime(10, 15, 0.02, "paper-text"))
        assert r["lam_prime"] == pytest.approx(100 * 0.02)
        expect = ridge_error(1.5, r["tau"], r["lam_prime"])
        assert r["relative_error"] == pytest.approx(expect, rel=1e-12)


def test_json_lam_prime_given_and_peak_is_null(capsys):
    assert main(["theory", "--alpha", "1", "--tau", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["relative_error"] is None and row["finite"] is False
    assert main(["theory", "--alpha", "1", "--tau", "1", "--lam-prime", "0.5", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["lam_prime"] == 0.5
    assert row["relative_error"] == pytest.approx(ridge_error(1, 1, 0.5), rel=1e-12)


def test_noise_divides_by_label_variance(capsys):
    argv = ["theory", "--alpha", "2", "--tau", "3", "--lam", "0.01", "--noise", "0.5", "--json"]
    assert main(argv) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["rho"] == pytest.approx(0.25)
    expect = ridge_error(2, 3, lam_prime(20, 40, 0.01), 0.25) / 1.25
    assert row["relative_error"] == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize(
    "extra, name",
    [
        (["--alpha", "0", "--tau", "1"], "alpha"),
        (["--alpha", "-2", "--tau", "1"], "alpha"),
        (["--alpha", "1", "--tau", "0"], "tau"),
        (["--alpha", "1", "--tau", "1", "--lam", "-0.1"], "lam"),
        (["--alpha", "1", "--tau", "1", "--lam", "nan"], "lam"),
        (["--alpha", "1", "--tau", "1", "--lam-prime", "-1"], "lam-prime"),
        (["--alpha", "1", "--tau", "1", "--D", "0"], "D"),
        (["--alpha", "1", "--tau", "1", "--noise", "-1"], "noise"),
    ],
)
def test_bad_input_is_one_line(capsys, extra, name):
    assert main(["theory", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"spinglass-icl: error: {name} must")


def test_lam_and_lam_prime_exclusive(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["theory", "--alpha", "1", "--tau", "1", "--lam", "1", "--lam-prime", "1"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
