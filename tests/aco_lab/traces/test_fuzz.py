"""Fuzzing the trace readers: hostile bytes never crash a read, and no line is lost.

Random bytes and valid lines mutated (deep nesting, bad UTF-8, a BOM, huge numbers, NaN,
wrong types, duplicate keys, truncation, flipped bytes) go through the lab's loader
(`read_traces`, also strict) and the runtime's reader (`aco.monitoring.read_trace_lines`),
and, for a few seeded files, through the real `aco-lab validate` and `aco stats` commands
(the latter also with a hostile outcomes file beside its log).
Checked: no exception but the project's errors; read == accepted + rejected; each rejected
line named `FILE:LINE: `. Bounded: seeded (derandomized) and a few seconds in all; set
ACO_FUZZ_EXAMPLES for a longer run. Figures: docs/reliability.md.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aco.errors import ACOError
from aco.monitoring import compute_metrics, read_trace_lines
from aco_lab.traces.reading import read_traces

EXAMPLES = int(os.environ.get("ACO_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"

STEP = {
    "step_num": 1,
    "action": "plan",
    "model_call": {
        "model_id": "m",
        "tier": 2,
        "cost": 0.002,
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_input_tokens": 0,
        "latency_ms": 412.5,
        "escalated_from": 1,
        "mean_logprob": -0.25,
        "min_logprob": -3.0,
        "output_text": "ok",
    },
    "tool_calls": [{"tool_name": "grep", "success": True, "cost": 0.0, "latency_ms": 3.5}],
    "verifier_called": True,
    "verifier_passed": None,
}


def good_trace(trace_id: str, r: random.Random) -> dict:
    trace = {
        "schema_version": 1,
        "trace_id": trace_id,
        "request": r.choice(["Fix it", "é ✓"]),
        "task_type": "coding",
        "difficulty": 3,
        "predicted_tier": 2,
        "timestamp": "2025-01-31T12:00:00Z",
        "source": "fuzz",
        "steps": [STEP, {"step_num": 2, "model_call": None}][: r.randint(0, 2)],
        "final_outcome": "completed",
        "task_success": r.choice([True, False, None]),
        "total_cost": 0.002,
        "metadata": {"k": [1, "ü", None]},
    }
    for key in r.sample(["task_type", "difficulty", "timestamp", "metadata", "request_id"], 2):
        trace.pop(key, None)
    return trace


_VALUE = re.compile(rb'"(\w+)": ("(?:[^"\\]|\\.)*"|-?[\d.eE+-]+|true|false|null)')
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
HUGE = [
    b"1e999",
    b"-1e999",
    b"123456789012345678901234567890",
    b"9223372036854775808",
    b"-0",
    b"1e-400",
    b"2147483648",
    b"-1",
    b"0.0",
    b"5e-324",
]
NOT_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"nan", b"0x10", b"01", b"1."]
OTHER_VALUES = [
    b'"x"',
    b"true",
    b"false",
    b"null",
    b"[]",
    b"{}",
    b"1.5",
    b"-1",
    b"0",
    b'""',
    b'"2025-02-30T00:00:00Z"',
    b'"completed"',
    b"[1, 2]",
    b'{"a": 1}',
]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe9", b"\xf4\x90\x80\x80", b"\x80"]


def _at_value(line: bytes, r: random.Random, new: bytes) -> bytes:
    found = list(_VALUE.finditer(line))
    if not found:
        return line
    m = r.choice(found)
    return line[: m.start(2)] + new + line[m.end(2) :]


def mutate(line: bytes, r: random.Random) -> bytes:
    """One random hostile change to a line."""
    kind = r.randrange(10) if line else 9
    if kind == 0:  # deep nesting, in an unknown key, metadata or a known field
        depth = r.choice([10, 200, 900, 1000, 3000])
        deep = (
            b"[" * depth + b"]" * depth
            if r.random() < 0.5
            else (b'{"a": ' * depth + b"1" + b"}" * depth)
        )
        return r.choice(
            [
                lambda: line[:-1] + b', "deep": ' + deep + b"}",
                lambda: line[:-1] + b', "metadata": {"x": ' + deep + b"}}",
                lambda: _at_value(line, r, deep),
            ]
        )()
    if kind == 1:  # bytes that are not UTF-8, anywhere or inside a string
        at = r.randrange(len(line) + 1)
        return line[:at] + r.choice(BAD_UTF8) + line[at:]
    if kind == 2:
        return BOM + line
    if kind == 3:  # huge, tiny and edge numbers
        found = list(_NUMBER.finditer(line))
        if not found:
            return line
        m = r.choice(found)
        return line[: m.start()] + r.choice(HUGE + NOT_NUMBERS) + line[m.end() :]
    if kind == 4:  # a value of the wrong type
        return _at_value(line, r, r.choice(OTHER_VALUES))
    if kind == 5:  # a key given twice, the copy with another value
        found = list(_VALUE.finditer(line))
        if not found:
            return line
        m = r.choice(found)
        copy = b'"' + m.group(1) + b'": ' + r.choice(OTHER_VALUES + [m.group(2)]) + b", "
        at = r.choice([m.start(), m.end() + 2])
        return line[:at] + copy + line[at:]
    if kind == 6:  # truncated
        return line[: r.randrange(len(line))]
    if kind == 7:  # a byte replaced, inserted or deleted
        at = r.randrange(len(line))
        byte = bytes([r.randrange(256)])
        return r.choice(
            [
                line[:at] + byte + line[at + 1 :],
                line[:at] + byte + line[at:],
                line[:at] + line[at + 1 :],
            ]
        )
    if kind == 8:  # a key removed
        found = list(_VALUE.finditer(line))
        if not found:
            return line
        m = r.choice(found)
        return line[: m.start()] + line[m.end() :]
    return bytes(r.randrange(256) for _ in range(r.randrange(1, 40)))  # random bytes


def hostile_file(r: random.Random, n_lines: int) -> bytes:
    """A JSONL file of good and mutated lines, blank lines and odd line ends."""
    lines = []
    for _ in range(n_lines):
        line = json.dumps(
            good_trace(f"t{r.randrange(n_lines * 2)}", r), ensure_ascii=r.random() < 0.5
        ).encode()
        for _ in range(r.choice([0, 1, 1, 2, 3])):
            line = mutate(line, r)
        lines.append(line + (b"\r" if r.random() < 0.1 else b""))
        if r.random() < 0.1:
            lines.append(r.choice([b"", b"  ", b"\t"]))
    data = b"\n".join(lines) + (b"\n" if r.random() < 0.8 else b"")
    return (BOM + data) if r.random() < 0.1 else not_gzip(data)


def not_gzip(data: bytes) -> bytes:
    """Data that does not start as gzip does (broken gzip files are a file-level error)."""
    return b"\n" + data if data.startswith(GZIP_MAGIC) else data


def counted_lines(data: bytes) -> list[int]:
    """The line numbers the readers count: the non-blank lines (a leading BOM dropped)."""
    data = data.removeprefix(BOM)
    return [n for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]


def write(directory: Path, data: bytes, gzipped: bool) -> Path:
    path = directory / ("traces.jsonl.gz" if gzipped else "traces.jsonl")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def check_lab(path: Path, data: bytes, strict: bool) -> None:
    tables = read_traces(path, on_error="skip", strict=strict)
    counted = counted_lines(data)
    assert tables.lines_read == len(counted) == tables.runs.height + len(tables.rejected)
    accepted = tables.runs["line"].to_list()
    rejected = [r.line for r in tables.rejected]
    assert sorted(accepted + rejected) == counted  # every counted line once, nothing else
    for r in tables.rejected:
        assert r.error.startswith(f"{path}:{r.line}: ") and "\n" not in r.error
    if tables.rejected:
        with pytest.raises(ACOError, match=re.escape(tables.rejected[0].error)):
            read_traces(path, strict=strict)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def check_runtime(path: Path, data: bytes) -> None:
    records = _Records()
    logger = logging.getLogger("aco.monitoring")
    logger.addHandler(records)
    try:
        traces = list(read_trace_lines(path, on_error="skip"))
    finally:
        logger.removeHandler(records)
    assert len(traces) + len(records.messages) == len(counted_lines(data))
    for message in records.messages:
        assert re.match(rf"{re.escape(str(path))}:\d+: .+; skipped$", message)
    metrics = compute_metrics(traces)
    assert metrics["runs"] == len(traces)
    try:
        list(read_trace_lines(path))
    except ACOError as exc:
        assert str(exc).startswith(f"{path}:")


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    n_lines=st.integers(1, 8),
    gzipped=st.booleans(),
    strict=st.booleans(),
)
def test_hostile_files_never_crash_a_reader_nor_lose_a_line(
    seed: int, n_lines: int, gzipped: bool, strict: bool
) -> None:
    data = hostile_file(random.Random(seed), n_lines)
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), data, gzipped)
        check_lab(path, data, strict)
        check_runtime(path, data)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_never_crash_a_reader(data: bytes) -> None:
    data = not_gzip(data)
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), data, gzipped=False)
        check_lab(path, data, strict=True)
        check_runtime(path, data)


def _run(name: str, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name(name)
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_commands_survive_hostile_files(tmp_path: Path, seed: int) -> None:
    r = random.Random(seed)
    data = b"\n".join(hostile_file(r, 40).rstrip(b"\n") for _ in range(5)) + b"\n"
    path = write(tmp_path, data, gzipped=seed == 1)
    for strict in ([], ["--strict"]):
        done = _run("aco-lab", "validate", str(path), "--json", *strict)
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
        summary = json.loads(done.stdout)
        assert summary["read"] == len(counted_lines(data))
        assert summary["read"] == summary["accepted"] + summary["rejected"]
        assert len(summary["problems"]) == summary["rejected"]
        assert all(
            p["file"] == str(path) and p["error"].startswith(f"{path}:{p['line']}: ")
            for p in summary["problems"]
        )
    log = tmp_path / "log"  # the runtime's log: one plain traces.jsonl per directory
    log.mkdir()
    log_file = write(log, data, gzipped=False)
    (log / "outcomes.jsonl").write_bytes(hostile_file(r, 20))  # outcomes the log's runs join
    done = _run("aco", "stats", "--trace-dir", str(log), "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    expected_runs = len(list(read_trace_lines(log_file, on_error="skip")))
    assert expected_runs > 0
    assert json.loads(done.stdout)["runs"] == expected_runs
    assert re.search(r"outcomes\.jsonl:\d+: ", done.stderr)  # bad outcome lines named
