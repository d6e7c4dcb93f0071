"""The promotion gate: a first model must beat chance, a challenger must beat the champion."""

from __future__ import annotations

from core.params import GateParams, Params
from pipelines.gate import judge

# margins that are exact in binary floating point, so the boundaries below are exact too
GATE = GateParams(ap_margin=0.125, cpk_tolerance=0.0, first_model_ap_margin=0.25)


def metrics(ap: float, cpk: float = 0.5, ap_random: float = 0.25) -> dict[str, float]:
    return {"average_precision": ap, "average_precision_random": ap_random, "card_precision_at_k": cpk}


def test_first_model_is_promoted_above_random_plus_margin() -> None:
    decision = judge(metrics(0.625), None, GATE)
    assert decision.promote
    assert decision.reasons == ["first model: AP 0.625 beats random baseline + margin (0.500)"]


def test_first_model_at_exactly_the_floor_is_promoted() -> None:
    assert judge(metrics(0.5), None, GATE).promote


def test_first_model_below_random_plus_margin_is_refused() -> None:
    decision = judge(metrics(0.375), None, GATE)
    assert not decision.promote
    assert decision.reasons == ["first model: AP 0.375 does not beat random baseline + margin (0.500)"]


def test_first_model_uses_the_margin_of_params_yaml(params: Params) -> None:
    margin = params.gate.first_model_ap_margin
    assert judge(metrics(0.01 + margin + 0.001, ap_random=0.01), None, params.gate).promote
    assert not judge(metrics(0.01 + margin - 0.001, ap_random=0.01), None, params.gate).promote


def test_challenger_better_by_the_margin_and_not_worse_on_cpk_is_promoted() -> None:
    decision = judge(metrics(0.625, cpk=0.5), metrics(0.5, cpk=0.5), GATE)
    assert decision.promote
    assert decision.reasons == [
        "AP 0.625 >= champion 0.500 + margin 0.125",
        "CP@k 0.500 >= champion 0.500 - tolerance 0.0",
    ]


def test_challenger_better_on_ap_but_worse_on_cpk_is_not_promoted() -> None:
    decision = judge(metrics(0.75, cpk=0.375), metrics(0.5, cpk=0.5), GATE)
    assert not decision.promote
    assert decision.reasons == [
        "AP 0.750 >= champion 0.500 + margin 0.125",
        "CP@k 0.375 < champion 0.500 - tolerance 0.0",
    ]


def test_challenger_better_by_less_than_the_margin_is_not_promoted() -> None:
    decision = judge(metrics(0.5625, cpk=0.75), metrics(0.5, cpk=0.5), GATE)
    assert not decision.promote
    assert decision.reasons[0] == "AP 0.562 < champion 0.500 + margin 0.125"


def test_an_equal_challenger_is_not_promoted() -> None:
    same = metrics(0.5, cpk=0.5)
    decision = judge(dict(same), same, GATE)
    assert not decision.promote
    assert decision.reasons[0] == "AP 0.500 < champion 0.500 + margin 0.125"


def test_cpk_tolerance_allows_a_small_loss() -> None:
    gate = GATE.model_copy(update={"cpk_tolerance": 0.125})
    assert judge(metrics(0.625, cpk=0.375), metrics(0.5, cpk=0.5), gate).promote
    assert not judge(metrics(0.625, cpk=0.25), metrics(0.5, cpk=0.5), gate).promote
