"""Mixture methods turn per-domain token counts into weights that sum to 1."""

from __future__ import annotations

import pytest

from curate.mixture import weigh
from curate.recipe import Mixture

TOKENS = {"web": 800, "wiki": 150, "code": 50}


def test_natural_weights_follow_token_counts() -> None:
    assert weigh(Mixture(method="natural"), TOKENS)["weights"] == {"code": 0.05, "web": 0.8, "wiki": 0.15}


def test_uniform_weights_are_equal() -> None:
    assert all(w == pytest.approx(1 / 3) for w in weigh(Mixture(method="uniform"), TOKENS)["weights"].values())


def test_temperature_flattens_towards_uniform() -> None:
    w = weigh(Mixture(method="temperature", tau=2.0), TOKENS)["weights"]
    assert w["web"] == pytest.approx(800 ** 0.5 / sum(v ** 0.5 for v in TOKENS.values()))
    assert w["code"] > 0.05 and w["web"] < 0.8


def test_manual_weights_are_normalized() -> None:
    w = weigh(Mixture(method="manual", weights={"web": 2, "wiki": 1, "code": 1}), TOKENS)["weights"]
    assert w == {"code": 0.25, "web": 0.5, "wiki": 0.25}


def test_a_weighted_domain_with_no_documents_left_is_warned_about() -> None:
    out = weigh(Mixture(method="uniform"), {"web": 10, "code": 0})
    assert out["weights"]["code"] == 0 and out["warnings"] == []
    out = weigh(Mixture(method="manual", weights={"web": 1, "code": 1}), {"web": 10, "code": 0})
    assert "code" in out["warnings"][0]


@pytest.mark.parametrize("spec,message", [
    ({"method": "temperature"}, "needs tau"),
    ({"method": "manual"}, "needs weights"),
    ({"method": "natural", "tau": 2}, "tau is only used"),
    ({"method": "manual", "weights": {"a": -1}}, ">= 0"),
])
def test_inconsistent_mixture_settings_are_rejected(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Mixture(**spec)
