"""Trace format v1 is defined once (aco.trace_format.FIELDS): what is derived from it agrees."""

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from aco import trace_format as tf
from aco.trace_decode import STRUCTS, TRACE_DECODER, describe_decode_error

DOCS = Path(__file__).resolve().parents[2] / "docs" / "trace_format.md"


@pytest.mark.parametrize("level", tf.LEVELS)
def test_the_docs_hold_the_generated_field_tables(level: str) -> None:
    assert tf.field_table_block(level) in DOCS.read_text(encoding="utf-8"), (
        "docs/trace_format.md is out of date: paste the output of `python -m aco.trace_format`"
    )


def test_the_module_prints_the_tables() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aco.trace_format"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "\n\n".join(tf.field_table_block(lv) for lv in tf.LEVELS)


@pytest.mark.parametrize("level", tf.LEVELS)
def test_the_decoder_types_have_the_table_fields(level: str) -> None:
    fields = msgspec.structs.fields(STRUCTS[level])
    assert [f.name for f in fields] == [f.name for f in tf.fields_of(level)]
    assert [f.required for f in fields] == [f.required for f in tf.fields_of(level)]


def test_every_field_name_is_unique_within_its_level() -> None:
    for level in tf.LEVELS:
        names = [f.name for f in tf.fields_of(level)]
        assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("schema_version", "1 (this loader reads trace format v1)"),
        ("trace_id", "a non-empty string"),
        ("difficulty", "an int 1..5 or null"),
        ("final_outcome", "one of completed, failed, aborted, budget_exceeded"),
        ("task_success", "true, false or null"),
        ("steps[3].step_num", "an int >= 1"),
        ("steps[0].tool_calls", "a list of tool-call objects"),
        ("steps[0].verifier_called", "true or false"),
        ("steps[0].model_call.input_tokens", "an int >= 0 or null"),
        ("steps[0].model_call.min_logprob", "a number <= 0 or null"),
        ("steps[1].tool_calls[2].cost", "a number >= 0"),
        ("nonsense", "a value allowed by trace format v1"),
    ],
)
def test_what_messages_say_is_allowed(path: str, expected: str) -> None:
    assert tf.expected(path) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps[0].step_num", 2**31),  # beyond the step_num column (Int32)
        ("steps[0].model_call.input_tokens", 2**63),  # beyond Int64
        ("steps[0].model_call.tier", 6),
    ],
)
def test_a_value_beyond_its_range_or_column_is_refused(field: str, value: int) -> None:
    step = {"step_num": 1, "model_call": {"model_id": "m", "tier": 2, "cost": 0.1}}
    trace = {
        "trace_id": "t",
        "request": "r",
        "steps": [step],
        "final_outcome": "failed",
        "task_success": None,
        "total_cost": 0.1,
    }
    target = step["model_call"] if "model_call" in field else step
    target[field.rsplit(".", 1)[-1]] = value
    line = msgspec.json.encode(trace)
    with pytest.raises(msgspec.ValidationError) as caught:
        TRACE_DECODER.decode(line)
    assert describe_decode_error(line, caught.value).startswith(field + ": ")
