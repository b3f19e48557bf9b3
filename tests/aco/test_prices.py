"""The price snapshot: checked at load, model names as SDKs spell them, the cost formula."""

import shutil
from pathlib import Path

import pytest

from aco.config import TierSpec
from aco.errors import DataError
from aco.prices import (
    COST_SNAPSHOT,
    COST_TIER_TABLE,
    COST_UNPRICED,
    SNAPSHOT_PATH,
    ModelPrice,
    cost_metadata,
    load_price_snapshot,
    price_call,
)


def test_snapshot_is_dated_sourced_and_pinned() -> None:
    snapshot = load_price_snapshot()
    assert snapshot.date[:2] == "20" and len(snapshot.date) == 10
    assert "litellm" in snapshot.source
    assert len(snapshot.models) > 100


def test_a_changed_snapshot_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model_prices.json"
    shutil.copy(SNAPSHOT_PATH, copy)
    copy.write_bytes(copy.read_bytes().replace(b'"input": ', b'"input": 1', 1))
    with pytest.raises(DataError, match="sha256 .* is not the pinned"):
        load_price_snapshot(copy)


@pytest.mark.parametrize("name", ["gpt-4o", "openai/gpt-4o", "GPT-4o"])
def test_model_names_as_sdks_spell_them(name: str) -> None:
    assert load_price_snapshot().find(name).model_id == "gpt-4o"


def test_provider_prefix_is_tried() -> None:
    snapshot = load_price_snapshot()
    gemini = next(m for m in snapshot.models if m.startswith("gemini/"))
    assert snapshot.find(gemini.removeprefix("gemini/"), provider="gemini").model_id == gemini


def test_cached_tokens_are_billed_at_the_cache_rate() -> None:
    price = ModelPrice("m", "p", input=2e-6, output=8e-6, cached_input=5e-7)
    assert price.cost(1000, 100, 400) == pytest.approx(600 * 2e-6 + 400 * 5e-7 + 100 * 8e-6)
    assert ModelPrice("m", "p", 2e-6, 8e-6).cost(1000, 0, 400) == pytest.approx(1000 * 2e-6)


def test_price_call_sources() -> None:
    gpt = load_price_snapshot().find("gpt-4o-mini")
    priced = price_call("gpt-4o-mini", 1000, 200)
    assert priced.source == COST_SNAPSHOT
    assert priced.cost == pytest.approx(1000 * gpt.input + 200 * gpt.output)
    spec = TierSpec(2, "in-house-8b", cost_per_1k_input=0.5, cost_per_1k_output=1.0)
    in_house = price_call("in-house-8b", 1000, 1000, tier_prices=spec)
    assert (in_house.cost, in_house.source) == (pytest.approx(1.5), COST_TIER_TABLE)
    assert price_call("in-house-8b", 1000, 1000).source == COST_UNPRICED
    assert price_call("gpt-4o", None, None).cost == 0.0


def test_cost_metadata_names_the_snapshot_only_when_used() -> None:
    assert cost_metadata({"steps[0].model_call.cost": "reported"}) == {
        "cost_sources": {"steps[0].model_call.cost": "reported"}
    }
    meta = cost_metadata({"steps[0].model_call.cost": COST_SNAPSHOT})
    assert meta["price_snapshot"]["sha256"] == load_price_snapshot().sha256


# -- record_call given only tokens ---------------------------------------------------------
def _opt(tmp_path: Path, tiers=None):
    from aco.config import ACOConfig
    from aco.optimizer import ACOOptimizer

    config = ACOConfig(trace_dir=str(tmp_path))
    return ACOOptimizer(config.replace(tiers=tiers) if tiers else config)


def test_record_call_without_a_cost_is_priced_and_says_how(tmp_path: Path) -> None:
    tiers = (
        TierSpec(1, "gpt-4o-mini"),
        TierSpec(2, "in-house-8b", "local", 0.5, 1.0),
        TierSpec(3, "gpt-4o"),
    )
    opt = _opt(tmp_path, tiers)
    run = opt.begin("What is 2+2?")
    run.record_call(1, input_tokens=1000, output_tokens=100, cached_input_tokens=200)
    run.record_call(2, input_tokens=1000, output_tokens=1000)
    run.record_call(3, 0.25, input_tokens=10, output_tokens=10)
    run.record_call(3, model_id="unknown-model", input_tokens=10, output_tokens=10)
    trace = run.end(None)
    costs = [s["model_call"]["cost"] for s in trace["steps"]]
    mini = load_price_snapshot().find("gpt-4o-mini")
    assert costs == [pytest.approx(mini.cost(1000, 100, 200)), pytest.approx(1.5), 0.25, 0.0]
    assert trace["total_cost"] == pytest.approx(sum(costs))
    assert trace["metadata"]["cost_sources"] == {
        "steps[0].model_call.cost": "price_snapshot",
        "steps[1].model_call.cost": "tier_table",
        "steps[2].model_call.cost": "reported",
        "steps[3].model_call.cost": "unpriced",
    }
    assert trace["metadata"]["price_snapshot"] == load_price_snapshot().stamp()


def test_priced_runtime_traces_pass_strict_validation(tmp_path: Path) -> None:
    from aco_lab.traces.reading import read_traces

    opt = _opt(tmp_path)
    opt.start_run("Summarize the release notes")
    opt.record_call(2, input_tokens=300, output_tokens=80)
    opt.record_tool_call("web_search", True)
    opt.end_run(True)
    tables = read_traces(tmp_path, strict=True)
    assert tables.runs.height == 1 and not tables.rejected and not tables.warnings
