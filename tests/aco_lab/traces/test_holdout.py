"""Splitting trace files by request: nothing lost, no request on both sides, same bytes."""

import gzip
import json
from pathlib import Path

import pytest

from aco.errors import ACOError, TraceFormatError
from aco.trace_format import derive_request_id
from aco_lab.traces.holdout import split_trace_files


def _trace(rid: str | None, tier: int, request: str = "q") -> str:
    trace = {
        "trace_id": f"{rid}-{tier}",
        "request": request,
        "steps": [],
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.0,
    }
    if rid is not None:
        trace["request_id"] = rid
    return json.dumps(trace)


def _ids(path) -> list[str]:  # noqa: ANN001
    with gzip.open(path, "rt") as lines:
        return [
            json.loads(line).get("request_id") or derive_request_id(json.loads(line)["request"])
            for line in lines
        ]


def test_every_line_lands_once_and_requests_never_straddle(tmp_path) -> None:
    src = tmp_path / "t.jsonl"
    lines = [_trace(f"r{i}", t) for i in range(40) for t in (1, 2, 3)] + [_trace(None, 1, "free")]
    src.write_text("\n".join(lines) + "\n\n")
    train, ev = split_trace_files([src], tmp_path / "out", eval_fraction=0.25, seed=1)
    a, b = _ids(train), _ids(ev)
    assert len(a) + len(b) == len(lines)
    assert not set(a) & set(b)
    assert len(set(b)) == round(0.25 * 41)
    assert derive_request_id("free") in set(a) | set(b)


def test_the_same_input_gives_the_same_bytes(tmp_path) -> None:
    src = tmp_path / "t.jsonl"
    src.write_text("\n".join(_trace(f"r{i}", 1) for i in range(10)) + "\n")
    first = split_trace_files([src], tmp_path / "a")
    second = split_trace_files([src], tmp_path / "b")
    for x, y in zip(first, second, strict=True):
        assert x.read_bytes() == y.read_bytes()


@pytest.mark.parametrize(
    ("text", "fraction", "message"),
    [
        ("not json\n", 0.5, "t.jsonl:1: invalid JSON"),
        ('{"trace_id": "x"}\n', 0.5, "t.jsonl:1: request: required field is missing"),
        (_trace("r", 1) + "\n", 1.0, "eval_fraction: expected a number strictly between 0 and 1"),
    ],
)
def test_bad_input_is_an_error_saying_where(tmp_path, text, fraction, message) -> None:
    src = tmp_path / "t.jsonl"
    src.write_text(text)
    with pytest.raises(ACOError, match=message):
        split_trace_files([src], tmp_path / "out", eval_fraction=fraction)


def test_a_line_nested_too_deeply_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"request": "r", "x": ' + "[" * 100000 + "]" * 100000 + "}\n")
    with pytest.raises(TraceFormatError, match=f"{path}:1: invalid JSON: .* nested too deeply"):
        split_trace_files([path], tmp_path / "out")
