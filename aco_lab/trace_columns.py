"""The fast path of the trace loader: JSONL lines straight into column frames, in C.

`aco_lab._trace_columns` (aco_lab/_trace_columns.c, an optional extension) parses a chunk of
lines into the value, validity and offset buffers of the runs, steps and tool-call columns,
making no Python object per value; they become Arrow arrays without a copy, then Polars frames
equal to the ones msgspec's path builds (`trace_parser.decode_chunk`). It takes a line only
when msgspec would accept it with the same values; the lines it leaves are decoded here by
msgspec, which words their errors. When one of them turns out to be valid after all (a
duplicate or escaped key, nesting deeper than 64 levels, invalid UTF-8 where msgspec does not
look), the chunk is decoded by msgspec as a whole: `decode_columns` returns None. Without
the extension, or with ACO_PURE_PYTHON=1, every chunk takes msgspec's path.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pyarrow as pa

from aco import trace_format as tf
from aco_lab.trace_parser import DecodedChunk, LineProblem, decode_lines, split_lines

try:
    from aco_lab import _trace_columns
except ImportError:  # not built (no C compiler at install): msgspec decodes every line
    _trace_columns = None
if os.environ.get("ACO_PURE_PYTHON"):
    _trace_columns = None

_OUTCOMES = tuple(outcome.encode() for outcome in tf.FINAL_OUTCOMES)
_LIMITS = (tf.SCHEMA_VERSION, tf.MIN_TIER, tf.MAX_TIER, tf.MIN_DIFFICULTY, tf.MAX_DIFFICULTY)


def available() -> bool:
    """Whether the C fast path is in use (built, and not switched off by ACO_PURE_PYTHON)."""
    return _trace_columns is not None


def decode_columns(data: bytes, first_line: int = 1) -> DecodedChunk | None:
    """A chunk of JSONL (whole lines) as column frames; None: decode it with msgspec instead.

    Line numbers count from first_line, as in `trace_parser.decode_chunk`, whose result this
    equals (frames, line numbers and problems).
    """
    if _trace_columns is None:
        return None
    numbers, left, tables, unknown = _trace_columns.decode(data, first_line, _OUTCOMES, _LIMITS)
    problems: list[LineProblem] = []
    if left:
        lines = split_lines(data)
        for index in left:
            taken, _, bad = decode_lines([lines[index]], first_line + index)
            if taken:
                return None
            problems += bad
    runs, steps, tool_calls = (_frame(columns) for columns in tables)
    return DecodedChunk(np.frombuffer(numbers, np.int64).tolist(), _with_request_ids(runs),
                        steps, tool_calls, problems, np.frombuffer(unknown, np.int64).tolist())


def _frame(columns: tuple[tuple, ...]) -> pl.DataFrame:
    arrays = {name: _array(pa.type_for_alias(type_name), nulls, values, valid, offsets)
              for name, type_name, nulls, values, valid, offsets in columns}
    return pl.from_arrow(pa.table(arrays))  # type: ignore[return-value]


def _array(dtype: pa.DataType, nulls: int, values: bytes, valid: bytes, offsets: bytes | None
           ) -> pa.Array:
    """One column's buffers (a byte per value or row) as an Arrow array, without a copy
    except where Arrow wants bits: the validity, and booleans' values."""
    validity = _bits(valid) if nulls else None
    if offsets is not None:
        buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(values)]
    else:
        buffers = [validity, _bits(values) if dtype == pa.bool_() else pa.py_buffer(values)]
    return pa.Array.from_buffers(dtype, len(valid), buffers, null_count=nulls)


def _bits(flags: bytes) -> pa.Buffer:
    return pa.py_buffer(np.packbits(np.frombuffer(flags, np.uint8), bitorder="little"))


def _with_request_ids(runs: pl.DataFrame) -> pl.DataFrame:
    """A run without a request_id gets the one derived from its request text."""
    missing = runs.get_column(tf.REQUEST_ID).is_null().arg_true()
    if not missing.len():
        return runs
    requests = runs.get_column(tf.REQUEST).gather(missing).to_list()
    derived = pl.Series([tf.derive_request_id(request) for request in requests], dtype=pl.String)
    return runs.with_columns(runs.get_column(tf.REQUEST_ID).scatter(missing, derived))
