"""Lines that once crashed a whole read: each is now one rejection with FILE:LINE (or accepted)."""

import gzip
import json
from pathlib import Path

import pytest

from aco.errors import TraceFormatError
from aco_lab.traces.reading import read_traces

STEP = {
    "step_num": 1,
    "model_call": {"model_id": "m", "tier": 2, "cost": 0.1},
    "tool_calls": [{"tool_name": "grep", "success": True, "cost": 0.0}],
}


def line(trace_id: str = "t", **extra: object) -> bytes:
    trace = {
        "trace_id": trace_id,
        "request": "r",
        "steps": [STEP],
        "final_outcome": "completed",
        "task_success": True,
        "total_cost": 0.1,
        **extra,
    }
    return json.dumps(trace).encode()


def with_raw(raw_field: bytes, trace_id: str = "t") -> bytes:
    """A good line with `, <raw_field>` added at the end of the top-level object."""
    return line(trace_id)[:-1] + b", " + raw_field + b"}"


def read_one_bad(tmp_path: Path, bad: bytes, strict: bool = False) -> str:
    """Read a file of good, bad, good lines; return the one rejection's message."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(line("a") + b"\n" + bad + b"\n" + line("c") + b"\n")
    tables = read_traces(path, on_error="skip", strict=strict)
    assert tables.lines_read == 3 == tables.runs.height + len(tables.rejected)
    assert tables.runs["trace_id"].to_list() == ["a", "c"]
    (rejection,) = tables.rejected
    assert rejection.line == 2 and rejection.error.startswith(f"{path}:2: ")
    return rejection.error.removeprefix(f"{path}:2: ")


NESTED = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize("where", ["unknown key", "metadata", "known field"])
def test_json_nested_1000_deep_is_one_rejection(tmp_path: Path, where: str) -> None:
    bad = {
        "unknown key": with_raw(b'"deep": ' + NESTED),
        "metadata": with_raw(b'"metadata": {"x": ' + NESTED + b"}"),
        "known field": with_raw(b'"request_id": ' + NESTED),
    }[where]
    message = read_one_bad(tmp_path, bad)
    if where == "known field":  # refused at its first "[": a string was expected
        assert message == (
            "request_id: expected a string or null, got a value not shown "
            "(the line nests too deeply to read)"
        )
    else:
        assert message.startswith("invalid JSON: arrays or objects nested too deeply")


def test_deep_nesting_fails_cleanly_by_default(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(with_raw(b'"deep": ' + NESTED) + b"\n")
    with pytest.raises(TraceFormatError, match=rf"{path}:1: invalid JSON: .* nested too deeply"):
        read_traces(path)


def test_bad_utf8_in_metadata_is_rejected_at_its_line(tmp_path: Path) -> None:
    bad = with_raw(b'"metadata": {"note": "caf\xe9"}')
    column = len(bad[: bad.index(b"\xe9")].decode()) + 1
    assert read_one_bad(tmp_path, bad) == (
        f"metadata: not valid UTF-8 at column {column}; re-encode the file as UTF-8"
    )


def test_bad_utf8_and_a_bad_timestamp_on_one_line_reject_it_once(tmp_path: Path) -> None:
    bad = line("b", timestamp="yesterday")[:-1] + b', "metadata": {"x": "\xff"}}'
    assert read_one_bad(tmp_path, bad).startswith("timestamp: expected an RFC 3339")


def test_a_bad_timestamp_and_metadata_not_an_object_reject_the_line_once(tmp_path: Path) -> None:
    assert read_one_bad(tmp_path, line("b", timestamp="yesterday", metadata=[1])).startswith(
        "timestamp: "
    )


def test_bad_utf8_in_an_unknown_key_is_ignored_unless_strict(tmp_path: Path) -> None:
    bad = with_raw(b'"note": "\xff"', trace_id="b")
    path = tmp_path / "a.jsonl"
    path.write_bytes(bad + b"\n")
    assert read_traces(path).runs.height == 1
    assert read_one_bad(tmp_path, bad, strict=True).startswith("not valid UTF-8 at column ")


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_byte_order_mark_at_the_start_of_a_file_is_dropped(tmp_path: Path, gzipped: bool) -> None:
    data = b"\xef\xbb\xbf" + line("a") + b"\n" + line("b") + b"\n"
    path = tmp_path / "a.jsonl"
    path.write_bytes(gzip.compress(data) if gzipped else data)
    for strict in (False, True):
        tables = read_traces(path, strict=strict)
        assert tables.runs["trace_id"].to_list() == ["a", "b"]
        assert tables.runs["line"].to_list() == [1, 2]


def test_a_byte_order_mark_inside_a_file_is_an_invalid_character(tmp_path: Path) -> None:
    message = read_one_bad(tmp_path, b"\xef\xbb\xbf" + line("b"))
    assert message == "invalid JSON: invalid character near column 1"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            line("b").replace(b'"tier": 2', b'"tier": "x", "tier": 2'),
            'steps[0].model_call.tier: key given 2 times in one object ("x", then 2); every value '
            "must be an int 1..5 (the last one is kept); give the key once",
        ),
        (
            line("b").replace(b'"total_cost": 0.1', b'"total_cost": 0.1, "total_cost": -1'),
            "total_cost: key given 2 times in one object (0.1, then -1); every value must be a "
            "number >= 0 (the last one is kept); give the key once",
        ),
    ],
)
def test_a_duplicate_key_with_an_invalid_value_says_the_key_is_duplicated(
    tmp_path: Path, bad: bytes, message: str
) -> None:
    assert read_one_bad(tmp_path, bad) == message


def test_a_duplicate_key_whose_values_are_valid_keeps_the_last(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(line().replace(b'"tier": 2', b'"tier": 3, "tier": 2') + b"\n")
    assert read_traces(path).steps["tier"].to_list() == [2]
