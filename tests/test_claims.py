"""The verdict logic: synthetic numbers on both sides of every threshold."""

from __future__ import annotations

import math

import pytest

from spinglass_icl.errors import ParameterError
from spinglass_icl.experiments.claims import (
    VERDICTS,
    Claim,
    at_least,
    at_most,
    holds,
    not_comparable,
    overall,
)


@pytest.mark.parametrize(
    ("x", "verdict"),
    [(2.0, "agrees"), (1.0, "agrees"), (0.999, "partly"), (0.5, "partly"), (0.49, "disagrees")],
)
def test_at_least_both_sides_of_each_threshold(x, verdict):
    c = at_least("claim", "q", x, agree=1.0, partly=0.5)
    assert c.verdict == verdict and c.measured == x
    assert "1" in c.criterion and "0.5" in c.criterion


@pytest.mark.parametrize(
    ("x", "verdict"),
    [(0.0, "agrees"), (1.0, "agrees"), (1.001, "partly"), (2.0, "partly"), (2.01, "disagrees")],
)
def test_at_most_both_sides_of_each_threshold(x, verdict):
    assert at_most("claim", "q", x, agree=1.0, partly=2.0).verdict == verdict


def test_without_partly_band_there_are_two_outcomes():
    assert at_least("c", "q", 1.0, agree=1.0).verdict == "agrees"
    assert at_least("c", "q", 0.99, agree=1.0).verdict == "disagrees"
    assert at_most("c", "q", 1.01, agree=1.0).verdict == "disagrees"


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf, None])
def test_non_finite_measurement_is_not_comparable(x):
    for c in (at_least("c", "q", x, 1.0, 0.5), at_most("c", "q", x, 1.0, 2.0),
              holds("c", "q", x, True, "crit")):  # fmt: skip
        assert c.verdict == "not comparable" and c.measured is None


def test_holds_and_not_comparable():
    assert holds("c", "q", 0.01, True, "crit").verdict == "agrees"
    assert holds("c", "q", 0.01, False, "crit").verdict == "disagrees"
    nc = not_comparable("c", "the paper gives no number")
    assert nc.verdict == "not comparable" and nc.criterion == "the paper gives no number"


def test_bad_bands_and_verdicts_are_one_line_errors():
    with pytest.raises(ParameterError, match="partly threshold"):
        at_least("c", "q", 1.0, agree=1.0, partly=2.0)
    with pytest.raises(ParameterError, match="partly threshold"):
        at_most("c", "q", 1.0, agree=1.0, partly=0.5)
    with pytest.raises(ParameterError, match="verdict must be one of"):
        Claim("c", "q", 1.0, "crit", "maybe")


def _c(v: str) -> Claim:
    return Claim("c", "q", 1.0, "crit", v)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["agrees", "agrees"], "agrees"),
        (["agrees", "not comparable"], "agrees"),
        (["agrees", "disagrees"], "partly"),
        (["agrees", "partly"], "partly"),
        (["disagrees", "disagrees", "not comparable"], "disagrees"),
        (["partly"], "partly"),
        (["not comparable"], "not comparable"),
        ([], "not comparable"),
    ],
)
def test_overall_verdict(verdicts, expected):
    assert overall([_c(v) for v in verdicts]) == expected
    assert overall([_c(v).to_dict() for v in verdicts]) == expected  # from result.json


def test_overall_is_never_agrees_when_a_claim_disagrees():
    import itertools

    for combo in itertools.product(VERDICTS, repeat=3):
        if "disagrees" in combo:
            assert overall([_c(v) for v in combo]) != "agrees"


def test_claim_round_trips_through_json():
    import json

    c = at_most("c", "q", 0.3, agree=0.5)
    d = json.loads(json.dumps(c.to_dict()))
    assert Claim.from_dict(d) == c
    assert set(d) == {"claim", "quantity", "measured", "criterion", "verdict"}
