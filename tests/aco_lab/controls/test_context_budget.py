"""The context budget: quantiles of successful runs' prompts, fallbacks, keep/omit evidence."""

import pytest

from aco.config import ACOConfig
from aco.learned_controls import apply_context_budget, check_spec
from aco_lab.controls.context_budget import (
    ContextSettings,
    evaluate_context_budget,
    learn_context_budget,
)
from tests.aco_lab.controls.builders import run, step, tables_of

FEW_SHOT = "".join(f"Question {i}: 2+{i}?\nAnswer: {2 + i}\n\n" for i in range(5))


def _qa_runs(n: int) -> list[dict]:
    # Successful runs' largest prompts are 100..100+n-1; failed runs read far more.
    runs = [
        run(
            f"ok{i}",
            [step(1, 2, input_tokens=50), step(2, 2, input_tokens=100 + i)],
            True,
            task_type="qa",
            request=FEW_SHOT + "Question: 2+9?\nAnswer:",
        )
        for i in range(n)
    ]
    runs += [
        run(f"bad{i}", [step(1, 2, input_tokens=5000)], False, task_type="qa") for i in range(5)
    ]
    return runs


def test_the_budget_is_the_quantile_of_successful_runs_largest_prompt(tmp_path) -> None:
    spec = learn_context_budget(tables_of(tmp_path, _qa_runs(40)), ContextSettings(quantile=0.9))
    check_spec("context_budget", spec)
    assert spec["total_tokens"]["qa/2"] == 136  # the 90% quantile (higher) of 100..139
    assert apply_context_budget(spec, "qa", 2).total_tokens == 136
    # A tier the traces never ran falls back to every run.
    assert apply_context_budget(spec, "qa", 4).total_tokens == spec["total_tokens"]["*/*"]


def test_few_shot_preambles_are_omitted_and_growing_prompts_drop_old_tool_output(tmp_path) -> None:
    spec = learn_context_budget(tables_of(tmp_path, _qa_runs(40)))
    evidence = spec["evidence"]["qa"]
    assert evidence["few_shot_share"] > 0.5
    assert evidence["growth_per_step"] >= 50
    assert "few_shot_preamble" in spec["omit"]["qa"]
    assert "stale_tool_outputs" in spec["omit"]["qa"]
    assert spec["keep_exact"]["qa"][0] == "final_question"
    assert "identifiers_and_numbers" in spec["keep_exact"]["qa"]


def test_cells_with_few_successful_runs_use_the_tier_over_all_task_types(tmp_path) -> None:
    runs = _qa_runs(40) + [
        run(f"rare{i}", [step(1, 2, input_tokens=900)], True, task_type="rare") for i in range(3)
    ]
    spec = learn_context_budget(tables_of(tmp_path, runs))
    assert "rare/2" not in spec["total_tokens"]
    assert apply_context_budget(spec, "rare", 2).total_tokens == spec["total_tokens"]["*/2"]


def test_held_out_coverage_is_near_the_quantile_and_far_tighter_than_the_rules(sim) -> None:
    spec = learn_context_budget(sim.train)
    learned, rules = evaluate_context_budget(spec, sim.held_out, ACOConfig())
    coverage = learned.covered_successes / learned.successful_runs
    assert coverage == pytest.approx(0.9, abs=0.05)
    # Tighter than the rules' fixed allowances and covering more successful runs (agent-sized
    # prompts of 5-100K tokens: the rules' allowance is too small for some, too large for most).
    assert learned.mean_allowance < rules.mean_allowance / 1.5
    assert learned.covered_successes > rules.covered_successes
    assert learned.trimmed_share < min(0.1, rules.trimmed_share / 2)
