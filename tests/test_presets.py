"""Presets: frozen dataclasses per figure, the paper's values as defaults, checked once."""

from __future__ import annotations

import dataclasses

import pytest

from spinglass_icl.errors import ParameterError
from spinglass_icl.experiments import FIGURES
from spinglass_icl.experiments.presets import PRESETS, Fig4bPreset, Fig6Preset, get_preset


def test_every_figure_has_every_preset_and_paper_is_the_default():
    for name in FIGURES:
        paper = get_preset("paper", name)
        assert paper == type(paper)()  # the paper's values are the class defaults
        for preset in PRESETS:
            p = get_preset(preset, name)
            assert type(p) is type(paper)
            with pytest.raises(dataclasses.FrozenInstanceError):
                p.D = 3  # type: ignore[misc]


def test_paper_values_of_the_captions():
    assert get_preset("paper", "fig4b").P == 10000 and Fig4bPreset().lam == 0.01
    p = Fig6Preset()
    assert (p.D, p.P, p.H, p.M, p.trials) == (20, 10000, 32, 10, 100)


def test_fields_are_checked_once_on_construction():
    with pytest.raises(ParameterError, match="^D must be an integer >= 1, got 0"):
        Fig4bPreset(D=0)
    with pytest.raises(ParameterError, match="^lam must be > 0"):
        get_preset("quick", "fig3").replace(lam=-1.0)
    with pytest.raises(ParameterError, match="^models must be one of"):
        Fig6Preset(models=("sla", "bogus"))
    with pytest.raises(ParameterError, match="^P_range must be"):
        get_preset("tiny", "fig4a").replace(P_range=(10, 5))
    with pytest.raises(ParameterError, match="params must be keys"):
        get_preset("tiny", "fig1").replace(nonsense=1)
    # lists become tuples (hashable, frozen)
    assert Fig4bPreset(N_list=[5, 10]).N_list == (5, 10)
    assert get_preset("tiny", "fig4b").to_dict()["N_list"] == [4, 12, 36]


def test_read_only_mapping_access():
    p = get_preset("tiny", "fig4b")
    assert p["D"] == p.D and "trials" in p and "nonsense" not in p
    assert p.get("sampler", "prompts") == "prompts" and p.get("trials") == p.trials
    assert set(p.keys()) == set(p.to_dict())
    with pytest.raises(KeyError):
        p["nonsense"]
