"""aco_lab.report.usage: the dashboard's cells and figures, by hand and against raw values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aco.config import DEFAULT_TIERS, ACOConfig, TierSpec
from aco.monitoring import NULL_GROUP
from aco_lab.report import usage as U
from aco_lab.traces.reading import read_traces

# Top tier 5 at $2 per 1K input and $4 per 1K output tokens: easy sums by hand.
CONFIG = ACOConfig(tiers=(*DEFAULT_TIERS[:4], TierSpec(5, "m5", "cloud", 2.0, 4.0)))


def call(
    model: str,
    tier: int,
    cost: float,
    tokens: tuple | None = None,
    latency: float | None = None,
    **extra,
) -> dict:
    inp, out, cached = tokens or (None, None, None)
    return {
        "model_id": model,
        "tier": tier,
        "cost": cost,
        "input_tokens": inp,
        "output_tokens": out,
        "cached_input_tokens": cached,
        "latency_ms": latency,
        **extra,
    }


def trace(trace_id: str, calls: list[dict], total: float, **fields) -> dict:
    steps = [{"step_num": i + 1, "model_call": c} for i, c in enumerate(calls)]
    return {
        "trace_id": trace_id,
        "request": "r",
        "steps": steps,
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": total,
        **fields,
    }


TRACES = [
    # A tier-2 call and a tool call (cost 0.005).
    trace(
        "t1",
        [call("m2", 2, 0.01, (1000, 200, 100), 100.0)],
        0.015,
        task_type="coding",
        timestamp="2026-01-01T10:00:00Z",
    ),
    # Escalated from m1 to m2; total_cost has 0.004 the calls do not itemise; a false DONE.
    trace(
        "t2",
        [
            call("m1", 1, 0.001, (500, 100, None), 50.0),
            call("m2", 2, 0.02, (1000, 500, None), 300.0, escalated_from=1),
        ],
        0.025,
        task_type="coding",
        timestamp="2026-01-01T23:59:59Z",
        task_success=False,
    ),
    # No token counts, no latency, unknown outcome.
    trace(
        "t3",
        [call("m5", 5, 0.5)],
        0.5,
        task_type="research",
        timestamp="2026-01-02T00:00:00Z",
        task_success=None,
    ),
    # No timestamp, no model call.
    trace("t4", [], 0.0, task_type="quick_answer"),
]
TRACES[0]["steps"][0]["tool_calls"] = [{"tool_name": "search", "success": True, "cost": 0.005}]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):  # noqa: ANN001, ANN201
    path = tmp_path_factory.mktemp("usage") / "t.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TRACES))
    return read_traces(path)


@pytest.fixture(scope="module")
def calls(tables):  # noqa: ANN001, ANN201
    return U.build_call_cells(tables.runs, tables.steps, CONFIG)


def rows(cells: pl.DataFrame) -> dict[tuple, dict]:
    return {tuple(r[k] for k in (*U.KEYS, U.CALL_MODEL)): r for r in cells.iter_rows(named=True)}


def test_call_cells_by_hand(calls) -> None:
    cell = ("2026-01-01", "coding", "2", "m2")
    got = rows(calls)
    m1, m2 = got[(*cell, "m1")], got[(*cell, "m2")]
    assert (m1[U.CALLS], m1[U.SPEND], m1[U.TOP_SPEND]) == (1, 0.001, pytest.approx(1.4))
    assert (m2[U.CALLS], m2[U.SPEND]) == (2, pytest.approx(0.03))
    assert m2[U.TOP_SPEND] == pytest.approx((1000 * 2 + 200 * 4 + 1000 * 2 + 500 * 4) / 1000)
    assert (m2[U.INPUT], m2[U.OUTPUT], m2[U.CACHED], m2[U.CACHE_REPORTED]) == (2000, 700, 100, 1)
    assert got[(*cell, U.TOOLS)][U.SPEND] == pytest.approx(0.005)
    assert got[(*cell, U.NOT_ITEMISED)][U.SPEND] == pytest.approx(0.004)
    # Tool and unitemised spend count as spent at any tier.
    assert got[(*cell, U.TOOLS)][U.TOP_SPEND] == got[(*cell, U.TOOLS)][U.SPEND]
    m5 = got[("2026-01-02", "research", "5", "m5", "m5")]
    assert (m5[U.UNPRICED], m5[U.TOP_SPEND], m5[U.LAT_BINS]) == (1, 0.5, [])
    # A run without a timestamp, tier or model call adds no call cell and no spend row.
    assert not any(key[0] is None for key in got)


def test_run_cells_hold_the_monitoring_totals(tables) -> None:
    cells = U.build_run_cells(tables.runs)
    got = {tuple(r[k] for k in U.KEYS): r for r in cells.iter_rows(named=True)}
    coding = got[("2026-01-01", "coding", "2", "m2")]
    assert (
        coding["runs"],
        coding["successes"],
        coding["known"],
        coding["escalated"],
        coding["false_dones"],
        coding[U.KNOWN_COST],
    ) == (2, 1, 2, 1, 1, pytest.approx(0.04))
    assert got[("2026-01-02", "research", "5", "m5")][U.KNOWN_COST] == 0.0  # outcome unknown
    assert got[(None, "quick_answer", NULL_GROUP, NULL_GROUP)]["runs"] == 1


def test_figures_by_hand(tables, calls) -> None:
    figures = U.usage_figures(calls)
    overall = figures["overall"]
    assert overall[U.SPEND] == pytest.approx(tables.runs["total_cost"].sum())  # all of it
    assert overall[U.TOP_SPEND] == pytest.approx(1.4 + 6.8 + 0.005 + 0.004 + 0.5)
    assert overall["savings"] == pytest.approx(overall[U.TOP_SPEND] - 0.54)
    assert overall["savings_share"] == pytest.approx(overall["savings"] / overall[U.TOP_SPEND])
    # Three calls report latency (50, 100, 300 ms): the 2nd and the 3rd by nearest rank.
    assert overall["latency_calls"] == 3
    assert overall["latency_p50_ms"] == pytest.approx(100, rel=U.LATENCY_ACCURACY)
    assert overall["latency_p95_ms"] == pytest.approx(300, rel=U.LATENCY_ACCURACY)
    assert set(figures["by_model"]) == {"m1", "m2", "m5", U.TOOLS, U.NOT_ITEMISED}
    assert figures["by_model"]["m5"]["latency_p50_ms"] is None
    assert set(figures["by_day"]) == {"2026-01-01", "2026-01-02"}
    assert figures["by_day"]["2026-01-01"][U.SPEND] == pytest.approx(0.04)


def test_no_calls_gives_zero_figures(tables) -> None:
    empty = U.build_call_cells(tables.runs.clear(), tables.steps.clear(), CONFIG)
    overall = U.usage_figures(empty)["overall"]
    assert (overall[U.SPEND], overall["savings"], overall["latency_p50_ms"]) == (0, 0, None)


@given(st.floats(min_value=0.0, max_value=1e7))
def test_a_latency_bin_stands_for_its_values_within_the_accuracy(ms: float) -> None:
    index = pl.select(U.latency_bin(pl.lit(ms, dtype=pl.Float64))).item()
    # At most the accuracy off (1 ms and less share bin 0, whose value is 0.98 ms).
    assert abs(U.bin_value(index) / max(ms, 1.0) - 1) <= U.LATENCY_ACCURACY + 1e-12


def test_quantiles_are_the_nearest_rank_bins_of_the_raw_latencies() -> None:
    rng = np.random.default_rng(7)
    latency = rng.lognormal(7.0, 0.8, size=3000)
    groups = rng.choice(["a", "b", "c"], size=3000)
    bins = pl.select(U.latency_bin(pl.Series(latency))).to_series()
    cells = (
        pl.DataFrame({"g": groups, "b": bins})
        .group_by("g", "b")
        .len()
        .sort("b")
        .group_by("g")
        .agg(
            pl.col("b").cast(pl.Int64).alias(U.LAT_BINS),
            pl.col("len").cast(pl.Int64).alias(U.LAT_COUNTS),
        )
    )
    cells = cells.with_columns(
        *(
            pl.lit(0).alias(c)
            for c in (
                U.CALLS,
                U.SPEND,
                U.TOP_SPEND,
                U.UNPRICED,
                U.INPUT,
                U.OUTPUT,
                U.CACHED,
                U.CACHE_REPORTED,
            )
        )
    )
    got = U.summarise_usage(cells, "g")
    for group in "abc":
        values = np.sort(latency[groups == group])
        for name, q in U.LATENCY_QUANTILES:
            exact = values[math.ceil(q * len(values)) - 1]  # nearest rank
            assert got[group][name] == pytest.approx(exact, rel=U.LATENCY_ACCURACY)


def test_keyed_values_order_tiers_by_number_and_the_null_group_last() -> None:
    cells = pl.DataFrame({U.TIER: ["10", NULL_GROUP, "2", "1", "2"]})
    assert U.keyed_values(cells, U.TIER) == ["1", "2", "10", NULL_GROUP]


def test_top_tier_is_the_highest_in_the_config() -> None:
    assert U.top_tier(CONFIG).model_id == "m5"
    shuffled = ACOConfig(tiers=(DEFAULT_TIERS[4], *DEFAULT_TIERS[:4]))
    assert U.top_tier(shuffled).tier == 5


def test_cells_as_columns_round_trip(calls, tmp_path: Path) -> None:
    columns = U.cells_as_columns(calls)
    assert set(columns) == set(calls.columns)
    assert pl.DataFrame(columns, schema=calls.schema).equals(calls)
