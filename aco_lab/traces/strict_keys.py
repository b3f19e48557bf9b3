"""Strict reading: keys that trace format v1 does not define, with their field paths.

By default unknown keys are ignored at every level, so data from other tools loads as is; the
price is that a misspelt optional key (`difficuly`) is ignored too. Strict reading
(`aco-lab validate --strict`, `ingest --strict`, `read_traces(strict=True)`) rejects a line
that carries one, naming where it is and the field it was probably meant to be. The known keys
are the fields of aco/trace_format.py; `metadata` is free-form and not looked into.
"""

from __future__ import annotations

import difflib

import msgspec

from aco import trace_format as tf
from aco.trace_decode import DECODE_ERRORS, describe_decode_error

_KNOWN = {level: frozenset(f.name for f in tf.fields_of(level)) for level in tf.LEVELS}


def unknown_key_problem(line: bytes | memoryview) -> str | None:
    """`field.path: what was wrong` for a valid line's first unknown key (None: there is none).

    The line's known fields were decoded already; the bytes of an unknown key's value were
    only skipped, so this full decode may still find them unreadable (not UTF-8).
    """
    try:
        decoded = msgspec.json.decode(line)
    except DECODE_ERRORS as exc:
        return describe_decode_error(bytes(line), exc)
    found = unknown_keys(decoded)
    if not found:
        return None
    (first, allowed), others = found[0], [path for path, _ in found[1:]]
    guess = difflib.get_close_matches(first.rsplit(".", 1)[-1], sorted(allowed), n=1)
    hint = f' (did you mean "{guess[0]}"?)' if guess else ""
    also = f"; also unknown: {', '.join(others)}" if others else ""
    return (
        f"{first}: not a field of trace format v1{hint}{also}"
        " (strict reading refuses unknown keys; without it they are ignored)"
    )


def unknown_keys(trace: dict) -> list[tuple[str, frozenset[str]]]:
    """(field path, the keys allowed there) of a decoded, valid trace's unknown keys, in order."""
    found = _unknown(trace, tf.TRACE_LEVEL, "")
    for i, step in enumerate(trace[tf.STEPS]):
        found += _unknown(step, tf.STEP_LEVEL, f"steps[{i}].")
        if step.get(tf.MODEL_CALL) is not None:
            found += _unknown(step[tf.MODEL_CALL], tf.MODEL_CALL_LEVEL, f"steps[{i}].model_call.")
        for j, call in enumerate(step.get(tf.TOOL_CALLS, ())):
            found += _unknown(call, tf.TOOL_CALL_LEVEL, f"steps[{i}].tool_calls[{j}].")
    return found


def _unknown(obj: dict, level: str, prefix: str) -> list[tuple[str, frozenset[str]]]:
    known = _KNOWN[level]
    return [(prefix + key, known) for key in obj if key not in known]
