"""aco.monitoring: the metrics by hand on small traces, null edges, alert lines, groups, reading."""

from __future__ import annotations

import gzip
import json
import logging
import re
from pathlib import Path

import pytest

from aco.config import ACOConfig, AlertThresholds
from aco.errors import DataError, TraceFormatError
from aco.monitoring import (
    METRIC_KEYS,
    NULL_GROUP,
    compute_metrics,
    format_metrics,
    read_trace_lines,
)


def call(tier: int, cost: float = 0.0, **fields) -> dict:
    """A model_call dict."""
    return {"model_id": f"m{tier}", "tier": tier, "cost": cost, **fields}


def step(n: int = 1, model_call: dict | None = None, **fields) -> dict:
    """A step dict."""
    return {"step_num": n, "model_call": model_call, **fields}


def run(
    success: bool | None = True,
    cost: float = 1.0,
    outcome: str = "completed",
    steps: list | None = None,
    **fields,
) -> dict:
    """A trace dict; by default one tier-2 step with no tokens."""
    return {
        "trace_id": fields.pop("trace_id", "t"),
        "request": "q",
        "steps": [step(1, call(2))] if steps is None else steps,
        "final_outcome": outcome,
        "task_success": success,
        "total_cost": cost,
        **fields,
    }


def metrics(traces: list[dict], **alerts: float) -> dict:
    return compute_metrics(traces, ACOConfig(alerts=AlertThresholds(**alerts)))


# -- the metrics, by hand ----------------------------------------------------------------------
TWO_TIERS = [
    run(
        True,
        2.0,
        steps=[
            step(
                1,
                call(4, input_tokens=100, cached_input_tokens=40),
                verifier_called=True,
                verifier_passed=True,
            )
        ],
    ),
    run(False, 1.0, steps=[step(1, call(4, input_tokens=50)), step(2, None)]),
    run(True, 0.5, steps=[step(1, call(1, input_tokens=30, cached_input_tokens=10))]),
    run(None, 0.5, outcome="aborted", steps=[step(1, call(1, input_tokens=20))]),
]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("runs", 4),
        ("successes", 2),
        ("success_rate", 2 / 3),  # the unknown outcome is neither success nor failure
        ("total_cost", 4.0),
        ("labelled_share", 3 / 4),  # runs with a known outcome
        ("cost_per_success", 3.5 / 2),  # the labelled runs' cost, over their successes
        ("success_rate_by_tier", {"1": 1.0, "4": 0.5}),
        ("escalation_rate", 0.0),
        ("cache_hit_rate", 50 / 200),
        ("verifier_call_rate", 1 / 5),
        ("false_done_rate", 1 / 3),  # completed with a known outcome: two true, one false
    ],
)
def test_metrics_by_hand(key: str, expected: object) -> None:
    assert metrics(TWO_TIERS)[key] == pytest.approx(expected)


def test_the_output_has_exactly_the_metric_keys() -> None:
    assert list(metrics(TWO_TIERS)) == list(METRIC_KEYS)


@pytest.mark.parametrize(
    ("steps", "predicted", "tier", "escalated"),
    [
        ([step(1, call(2)), step(2, call(3, escalated_from=2))], None, "3", True),
        ([step(1, call(2)), step(2, call(4))], None, "4", True),  # two tiers, no escalated_from
        ([step(1, call(3, escalated_from=2))], None, "3", True),  # one call that escalated
        ([step(1, call(2)), step(2, call(2))], None, "2", False),
        ([step(1, call(2)), step(2, call(5))], 1, "1", True),  # predicted_tier wins
        ([], 3, "3", False),  # no call: the predicted tier still counts
    ],
)
def test_tier_and_escalation_of_a_run(steps: list, predicted, tier: str, escalated: bool) -> None:
    out = metrics([run(steps=steps, predicted_tier=predicted)])
    assert list(out["success_rate_by_tier"]) == [tier]
    assert out["escalation_rate"] == float(escalated)


# -- nulls -----------------------------------------------------------------------------------
def test_no_successes_leaves_cost_per_success_null() -> None:
    out = metrics([run(False, 1.0), run(False, 2.0, outcome="failed")])
    assert (out["successes"], out["success_rate"], out["cost_per_success"]) == (0, 0.0, None)


def test_unknown_outcomes_leave_rates_null() -> None:
    out = metrics([run(None), run(None, outcome="failed")])
    assert out["success_rate"] is None and out["false_done_rate"] is None
    assert out["success_rate_by_tier"] == {"2": None}
    assert out["cost_per_success"] is None


def test_false_done_rate_counts_completed_runs_with_a_known_outcome() -> None:
    traces = [run(False), run(None), run(True), run(False, outcome="failed")]
    assert metrics(traces)["false_done_rate"] == 0.5


def test_no_runs() -> None:
    out = metrics([])
    assert (out["runs"], out["successes"], out["total_cost"]) == (0, 0, 0.0)
    nullable = (
        "success_rate",
        "cost_per_success",
        "escalation_rate",
        "cache_hit_rate",
        "verifier_call_rate",
        "false_done_rate",
    )
    assert all(out[key] is None for key in nullable)
    assert out["success_rate_by_tier"] == {} and out["alerts"] == []


def test_zero_input_tokens_leave_the_cache_hit_rate_null() -> None:
    zero = [run(steps=[step(1, call(2, input_tokens=0, cached_input_tokens=0))])]
    assert metrics(zero)["cache_hit_rate"] is None


def test_cache_hit_rate_is_null_when_no_call_reports_the_cache() -> None:
    # Unknown is not zero: RouterBench reports input tokens but never the prompt cache.
    assert metrics([run(steps=[step(1, call(2, input_tokens=100))])])["cache_hit_rate"] is None
    mixed = [
        run(
            steps=[
                step(1, call(2, input_tokens=100)),
                step(2, call(2, input_tokens=100, cached_input_tokens=50)),
            ]
        )
    ]
    assert metrics(mixed)["cache_hit_rate"] == 0.25  # the unreported call counts as a miss


def test_runs_without_steps() -> None:
    out = metrics([run(True, 0.0, steps=[]), run(False, 0.0, steps=[])])
    assert out["verifier_call_rate"] is None
    assert out["success_rate_by_tier"] == {}  # no call and no predicted tier: no tier
    assert out["escalation_rate"] == 0.0


# -- alerts ----------------------------------------------------------------------------------
def _names(out: dict) -> list[str]:
    return [alert["name"] for alert in out["alerts"]]


@pytest.mark.parametrize(("successes", "fires"), [(7, False), (6, True), (10, False)])
def test_success_rate_alert_fires_strictly_below_the_line(successes: int, fires: bool) -> None:
    traces = [run(i < successes) for i in range(10)]
    out = metrics(traces, min_success_rate=0.7)
    assert ("low_success_rate" in _names(out)) is fires


@pytest.mark.parametrize(("escalated", "fires"), [(3, False), (4, True), (0, False)])
def test_escalation_alert_fires_strictly_above_the_line(escalated: int, fires: bool) -> None:
    cascade = [step(1, call(2)), step(2, call(3, escalated_from=2))]
    traces = [run(steps=cascade if i < escalated else [step(1, call(3))]) for i in range(10)]
    out = metrics(traces, max_escalation_rate=0.3)
    assert ("high_escalation_rate" in _names(out)) is fires


@pytest.mark.parametrize(("verified", "fires"), [(5, False), (6, True)])
def test_verifier_alert_fires_strictly_above_the_line(verified: int, fires: bool) -> None:
    traces = [run(steps=[step(1, call(2), verifier_called=i < verified)]) for i in range(10)]
    out = metrics(traces, max_verifier_call_rate=0.5)
    assert ("high_verifier_call_rate" in _names(out)) is fires


@pytest.mark.parametrize(("cheap_cost", "fires"), [(2.5, False), (2.6, True), (1.0, False)])
def test_cost_alert_compares_with_the_top_tier_present(cheap_cost: float, fires: bool) -> None:
    # Tier 4 is the top tier present: $2 over 2 successes, so always-frontier is $1 per success.
    # Overall: (2 + cheap_cost) / 3 successes against the line 1.5 x $1: above iff cheap > 2.5.
    top = [run(True, 1.0, steps=[step(1, call(4))]), run(True, 1.0, steps=[step(1, call(4))])]
    cheap = [run(True, cheap_cost, steps=[step(1, call(2))]), run(False, 0.0)]
    out = metrics(top + cheap, max_cost_ratio_vs_frontier=1.5)
    alerts = [a for a in out["alerts"] if a["name"] == "high_cost_per_success"]
    assert bool(alerts) is fires
    if fires:
        assert alerts[0]["value"] == pytest.approx((2.0 + cheap_cost) / 3)
        assert alerts[0]["threshold"] == 1.5


def test_cost_alert_exactly_at_the_line_does_not_fire() -> None:
    top = [run(True, 1.0, steps=[step(1, call(5))])]  # always-frontier: $1 per success
    other = [run(True, 3.0, steps=[step(1, call(2))])]  # overall: $4 / 2 = $2 per success
    assert "high_cost_per_success" not in _names(metrics(top + other))  # 2.0 is not > 2 x 1.0
    other = [run(True, 3.01, steps=[step(1, call(2))])]
    alert = next(a for a in metrics(top + other)["alerts"] if a["name"] == "high_cost_per_success")
    assert alert["value"] == pytest.approx(2.005) and alert["threshold"] == 2.0


@pytest.mark.parametrize(
    "traces",
    [
        [run(False, 5.0, steps=[step(1, call(5))]), run(True, 100.0, steps=[step(1, call(2))])],
        [run(False, 5.0, steps=[step(1, call(5))]), run(False, 9.0, steps=[step(1, call(2))])],
        [run(True, 5.0, steps=[])],  # no run has a tier
    ],
    ids=["top tier never succeeds", "nothing succeeds", "no tier"],
)
def test_no_cost_alert_without_an_always_frontier_reference(traces: list[dict]) -> None:
    assert "high_cost_per_success" not in _names(metrics(traces, max_cost_ratio_vs_frontier=0.0))


def test_alert_thresholds_come_from_the_config() -> None:
    traces = [run(i < 5) for i in range(10)]
    assert "low_success_rate" in _names(metrics(traces, min_success_rate=0.7))
    assert "low_success_rate" not in _names(metrics(traces, min_success_rate=0.5))


# -- groups ----------------------------------------------------------------------------------
GROUPED = [
    run(
        True,
        1.0,
        task_type="coding",
        source="runtime",
        steps=[step(1, call(3))],
        metadata={"task_type_from": "caller"},
    ),
    run(
        False,
        2.0,
        task_type="coding",
        source="bench",
        steps=[step(1, call(4))],
        metadata={"task_type_from": "classifier"},
    ),
    run(
        True,
        0.5,
        task_type=None,
        source="runtime",
        steps=[step(1, call(1))],
        metadata={"task_type_from": "none", "router_mode": "bundle"},
    ),
    run(True, 0.25, task_type="quick_answer", steps=[step(1, call(1))]),  # no metadata
]


@pytest.mark.parametrize(
    ("by", "keys"),
    [
        ("task_type", ["coding", "quick_answer", NULL_GROUP]),
        ("tier", ["1", "3", "4"]),
        ("source", ["bench", "runtime", NULL_GROUP]),
        ("task_type_from", ["caller", "classifier", "none", NULL_GROUP]),
    ],
)
def test_groups_equal_the_metrics_of_their_runs(by: str, keys: list[str]) -> None:
    out = compute_metrics(GROUPED, by=by)
    assert list(out[f"by_{by}"]) == keys
    overall = {k: v for k, v in out.items() if k != f"by_{by}"}
    assert overall == compute_metrics(GROUPED)
    for key, group in out[f"by_{by}"].items():
        members = [t for t in GROUPED if _key(t, by) == key]
        assert group == compute_metrics(members)


def _key(trace: dict, by: str) -> str:
    value = (
        trace["steps"][0]["model_call"]["tier"]
        if by == "tier"
        else (trace.get("metadata") or {}).get(by)
        if by == "task_type_from"
        else trace.get(by)
    )
    return NULL_GROUP if value is None else str(value)


def test_unknown_group_field_is_refused() -> None:
    with pytest.raises(DataError, match="--by: expected one of task_type, tier, source"):
        compute_metrics(GROUPED, by="model")


# -- bad traces ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"total_cost": "cheap"},
            r"trace #1 \(t\): total_cost: expected a number >= 0, got 'cheap'",
        ),
        ({"total_cost": -0.5}, r"total_cost: expected a number >= 0, got -0.5"),
        ({"task_success": 1}, r"task_success: expected true, false or null, got 1"),
        ({"steps": None}, r"steps: expected a list of steps, got None"),
        (
            {"steps": [{"step_num": 1, "model_call": {"tier": "high"}}]},
            r"steps\[0\]\.model_call\.tier: expected an int 1..5",
        ),
    ],
)
def test_malformed_traces_raise_with_the_field(change: dict, message: str) -> None:
    with pytest.raises(TraceFormatError, match=message):
        compute_metrics([{**run(), **change}])


def test_a_missing_required_field_is_named() -> None:
    trace = run()
    del trace["total_cost"]
    with pytest.raises(TraceFormatError, match="total_cost: required field missing"):
        compute_metrics([trace])


# -- reading -----------------------------------------------------------------------------------
def test_read_trace_lines_reads_plain_gzip_and_directories(tmp_path: Path) -> None:
    lines = [json.dumps(run(trace_id=f"t{i}")) for i in range(3)]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_text(lines[0] + "\n\n" + lines[1] + "\n")
    (tmp_path / "logs" / "b.jsonl.gz").write_bytes(gzip.compress((lines[2] + "\n").encode()))
    (tmp_path / "logs" / "notes.txt").write_text("not a trace\n")
    ids = [t["trace_id"] for t in read_trace_lines(tmp_path / "logs")]
    assert ids == ["t0", "t1", "t2"]


def test_read_trace_lines_fails_or_skips_bad_lines(tmp_path: Path, caplog) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(run()) + "\n{torn\n[1, 2]\n")
    with pytest.raises(TraceFormatError, match=rf"{path}:2: invalid JSON: "):
        list(read_trace_lines(path))
    with caplog.at_level(logging.WARNING, logger="aco.monitoring"):
        assert len(list(read_trace_lines(path, on_error="skip"))) == 1
    assert [r.getMessage().split(":")[1] for r in caplog.records] == ["2", "3"]


def test_read_trace_lines_refuses_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        list(read_trace_lines(tmp_path / "nope.jsonl"))


def test_format_metrics_shows_alerts_and_groups() -> None:
    text = format_metrics(compute_metrics(GROUPED, by="task_type"))
    assert "success_rate_by_tier  1: 100.0%  3: 100.0%  4: 0.0%" in text
    assert "ALERT" not in text
    assert "task_type" in text.splitlines()[-4] and text.splitlines()[-1].startswith(NULL_GROUP)
    failing = format_metrics(compute_metrics([run(False)]))
    assert "ALERT low_success_rate: success rate 0.0% is below 70.0%" in failing


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            b'{"deep": ' + b"[" * 1000 + b"]" * 1000 + b"}",
            "invalid JSON: arrays or objects nested too deeply",
        ),
        (json.dumps(run(cost="1")).encode(), 'total_cost: expected a number >= 0, got "1"'),
        (
            json.dumps(run(steps=[step(1, {**call(2), "input_tokens": "5"})])).encode(),
            'steps[0].model_call.input_tokens: expected an int >= 0 or null, got "5"',
        ),
        (json.dumps(run(predicted_tier="high")).encode(), "predicted_tier: expected an int 1..5"),
        (
            json.dumps(run(total_cost=1e300)).encode()[:-1] + b', "total_cost": 1e999}',
            "total_cost: key given 2 times",
        ),
    ],
)
def test_read_trace_lines_rejects_a_line_that_breaks_the_format(
    tmp_path: Path, caplog, bad: bytes, message: str
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(json.dumps(run()).encode() + b"\n" + bad + b"\n")
    with pytest.raises(TraceFormatError, match=re.escape(f"{path}:2: {message}")):
        list(read_trace_lines(path))
    with caplog.at_level(logging.WARNING, logger="aco.monitoring"):
        assert len(list(read_trace_lines(path, on_error="skip"))) == 1
    assert caplog.records[0].getMessage().startswith(f"{path}:2: {message}")


def test_read_trace_lines_drops_a_byte_order_mark_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(run()).encode() + b"\n")
    assert [t["trace_id"] for t in read_trace_lines(path)] == ["t"]
