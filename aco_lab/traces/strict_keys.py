"""Strict reading: keys that trace format v1 does not define, with their field paths.

By default unknown keys are ignored at every level, so data from other tools loads as is; the
price is that a misspelt optional key (`difficuly`) is ignored too. Strict reading
(`aco-lab validate --strict`, `ingest --strict`, `read_traces(strict=True)`) rejects a line
that carries one, naming where it is and the field it was probably meant to be. The known keys
are the fields of trace_parser's Structs; `metadata` is free-form and not looked into.
"""

from __future__ import annotations

import difflib

import msgspec

from aco_lab.traces.parser import ModelCall, Step, ToolCall, Trace

_KNOWN = {kind: frozenset(kind.__struct_fields__) for kind in (Trace, Step, ModelCall, ToolCall)}


def unknown_key_problem(line: bytes | memoryview) -> str | None:
    """`field.path: what was wrong` for a valid line's first unknown key (None: there is none)."""
    found = unknown_keys(msgspec.json.decode(line))
    if not found:
        return None
    (first, allowed), others = found[0], [path for path, _ in found[1:]]
    guess = difflib.get_close_matches(first.rsplit(".", 1)[-1], sorted(allowed), n=1)
    hint = f' (did you mean "{guess[0]}"?)' if guess else ""
    also = f"; also unknown: {', '.join(others)}" if others else ""
    return (f"{first}: not a field of trace format v1{hint}{also}"
            " (strict reading refuses unknown keys; without it they are ignored)")


def unknown_keys(trace: dict) -> list[tuple[str, frozenset[str]]]:
    """(field path, the keys allowed there) of a decoded, valid trace's unknown keys, in order."""
    found = _unknown(trace, Trace, "")
    for i, step in enumerate(trace["steps"]):
        found += _unknown(step, Step, f"steps[{i}].")
        if step.get("model_call") is not None:
            found += _unknown(step["model_call"], ModelCall, f"steps[{i}].model_call.")
        for j, call in enumerate(step.get("tool_calls", ())):
            found += _unknown(call, ToolCall, f"steps[{i}].tool_calls[{j}].")
    return found


def _unknown(obj: dict, kind: type, prefix: str) -> list[tuple[str, frozenset[str]]]:
    known = _KNOWN[kind]
    return [(prefix + key, known) for key in obj if key not in known]
