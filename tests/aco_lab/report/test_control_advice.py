"""What to do with each control: the sentence follows its held-out figures."""

import pytest

from aco_lab.controls.cascade_replay import CascadeSummary
from aco_lab.controls.context_budget import ContextResult
from aco_lab.controls.doom import DoomResult
from aco_lab.controls.suite import ControlsEvaluation
from aco_lab.controls.tool_gate import LEARNED_ADVICE, LEARNED_ENFORCED, RULES, GateResult
from aco_lab.controls.verifier_budget import VerifierResult
from aco_lab.report.control_advice import (
    cascade_advice,
    context_advice,
    doom_advice,
    gate_advice,
    verify_advice,
)
from aco_lab.report.controls import build_controls_sections
from aco_lab.report.document import Callout


def _cascade(name: str, successes: int, cost: float) -> CascadeSummary:
    return CascadeSummary(name, 100, successes, cost, 80, 10.0, 1.3, 0.3)


@pytest.mark.parametrize(
    ("rows", "start"),
    [
        (
            [_cascade("learned cascade", 78, 2.0), _cascade("top model only", 80, 10.0)],
            "Turn the learned cascade on: it keeps 97.5% of the top model's success at 20.0%",
        ),
        (
            [_cascade("learned cascade", 70, 2.0)],
            "Leave the learned cascade off: it keeps only 87.5%",
        ),
        (
            [_cascade("learned cascade", 78, 3.0), _cascade("agreement cascade", 77, 2.0)],
            "Use the agreement cascade rather than the learned cascade",
        ),
    ],
)
def test_cascade_advice(rows, start) -> None:
    assert cascade_advice(rows).startswith(start)


@pytest.mark.parametrize(
    ("flagged", "lost", "start"),
    [
        (30, 1, "Turn the doom check on: it saves 20.0% of spend and stops only 1.0% of the runs"),
        (
            30,
            12,
            "Leave the doom check off: on these runs it stops 12.0% of the runs that would "
            "have succeeded",
        ),
        (0, 0, "The learned doom check changes nothing here"),
    ],
)
def test_doom_advice(flagged, lost, start) -> None:
    rows = [DoomResult("learned", 200, 100, flagged, lost, 50.0, 10.0 if flagged else 0.0)]
    assert doom_advice(rows).startswith(start)


def _gate(name: str, denied: int, mode: str) -> GateResult:
    return GateResult(
        name,
        200,
        denied,
        denied * 0.01,
        denied // 2,
        0.5,
        0.9,
        ("qa/search",),
        mode,
        "11 of its 12 denies lack strong evidence",
    )


@pytest.mark.parametrize(
    ("mode", "enforced", "start"),
    [
        ("advisory", 0, "The learned tool gate runs advisory (every call goes ahead"),
        (
            "partly enforced",
            0,
            "The learned tool gate runs partly enforced, but none of its "
            "enforced denies touches a held-out call",
        ),
        (
            "enforced",
            40,
            "The learned tool gate runs enforced: it denies 20.0% of held-out tool calls",
        ),
    ],
)
def test_gate_advice_says_its_mode_and_why(mode, enforced, start) -> None:
    rows = [
        _gate(LEARNED_ADVICE, 90, mode),
        _gate(LEARNED_ENFORCED, enforced, mode),
        _gate(RULES, 5, "enforced"),
    ]
    text = gate_advice(rows)
    assert text.startswith(start) and "lack strong evidence" in text
    if enforced == 0:
        assert "it would deny 45.0% of held-out tool calls" in text


@pytest.mark.parametrize(
    ("caught", "rejected", "start"),
    [
        (8.0, 2.0, "Turn the learned verifier on: it catches 40.0% of the false DONEs"),
        (2.0, 6.0, "Leave the learned verifier off"),
    ],
)
def test_verify_advice(caught, rejected, start) -> None:
    rows = [VerifierResult("learned", 100, 20, 30, caught, rejected, 0.3)]
    assert verify_advice(rows).startswith(start)


@pytest.mark.parametrize(
    ("covered", "start"),
    [
        (90, "Use the learned context budget: 90.0% of the successful held-out runs fit"),
        (60, "Keep the rule context budget: only 60.0%"),
    ],
)
def test_context_advice(covered, start) -> None:
    rows = [
        ContextResult("learned", 120, 100, covered, 4000.0, 3000.0, 0.03),
        ContextResult("rules", 120, 100, 99, 9000.0, 3000.0, 0.0),
    ]
    assert context_advice(rows).startswith(start)


def test_each_section_opens_with_what_to_do_then_what_it_is() -> None:
    ev = ControlsEvaluation(
        cascade=(_cascade("learned cascade", 78, 2.0),),
        gate=(
            _gate(LEARNED_ADVICE, 90, "advisory"),
            _gate(LEARNED_ENFORCED, 0, "advisory"),
            _gate(RULES, 5, "enforced"),
        ),
    )
    for section in build_controls_sections(ev):
        first, second = section.blocks[:2]
        assert isinstance(first, Callout) and first.text[0].isupper()
        assert isinstance(second, str) and second.startswith(("A cascade", "The tool gate"))
