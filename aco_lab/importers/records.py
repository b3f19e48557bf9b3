"""What the importers share: export files read as records, runs built as v1 traces, one writer.

Each importer (otel, langfuse, langsmith) turns its export's records into `ImportedRun`s: the
model calls and tool calls of one run, with where each came from. `build_trace` makes a
trace-format-v1 dict of one (steps in start order, a tool call joining the model call before
it, missing costs priced from the price snapshot and the source of each cost in
``metadata.cost_sources``); `import_traces` runs an importer over files, checks every run, and
writes the traces atomically. Counts reconcile: every record read is used, skipped (not a model
or tool call) or part of a rejected run, and every run is written or rejected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aco import trace_format as tf
from aco.config import ACOConfig
from aco.errors import DataError
from aco.prices import COST_REPORTED, COST_UNPRICED, cost_metadata, cost_path, price_call
from aco_lab.files import write_bytes


class RecordError(ValueError):
    """One record (or run) cannot be imported; the message starts with where it is."""


@dataclass(frozen=True, slots=True)
class Record:
    """One JSON value of an export file and where it is: ``file[:line]:json.path[i]``."""

    location: str  # the file, or file:line for JSON lines
    value: Any
    path: str = ""  # the JSON path inside the document, e.g. resourceSpans[0].scopeSpans[1]

    @property
    def where(self) -> str:
        """``file[:line][:path]``, as problems name it."""
        return f"{self.location}:{self.path}" if self.path else self.location


@dataclass(frozen=True, slots=True)
class ImportedCall:
    """A model call as an export describes it."""

    where: str
    model_id: str
    started: float  # seconds since the epoch (orders the steps)
    provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cost: float | None = None  # USD; None: priced from the snapshot
    latency_ms: float | None = None
    alias: str | None = None  # the model as requested, when the response names another
    # (gpt-4o-mini for gpt-4o-mini-2024-07-18): its tier and price serve when model_id has none


@dataclass(frozen=True, slots=True)
class ImportedTool:
    """A tool call as an export describes it."""

    where: str
    name: str
    success: bool
    started: float
    cost: float | None = None
    latency_ms: float | None = None


@dataclass(slots=True)
class ImportedRun:
    """One run: its calls, its request and outcome, the records it was built from."""

    trace_id: str
    source: str  # the trace's `source`: otel, langfuse, langsmith
    where: str  # where its first record is
    request: str = ""
    started: float | None = None
    failed: bool = False  # the run itself ended in an error
    task_success: bool | None = None
    calls: list[ImportedCall] = field(default_factory=list)
    tools: list[ImportedTool] = field(default_factory=list)
    records: int = 0  # records this run was built from
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Parsed:
    """What a reader made of its files: the runs, and the counts and problems of the rest."""

    runs: list[ImportedRun] = field(default_factory=list)
    records: int = 0  # records read
    skipped: int = 0  # records that are not a model or tool call, nor describe a run
    invalid: int = 0  # records that belong to no run (not JSON, no trace id)
    bad_runs: int = 0  # runs the reader rejected (a record of theirs was wrong)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import read, wrote and rejected.

    records = skipped + invalid + the records of the runs (written or rejected);
    runs = written + rejected.
    """

    records: int
    skipped: int
    invalid: int
    runs: int
    written: int
    problems: tuple[str, ...]

    @property
    def rejected(self) -> int:
        """Runs not written."""
        return self.runs - self.written

    def summary(self) -> str:
        """One line of counts."""
        return (
            f"records={self.records} skipped={self.skipped} invalid={self.invalid} "
            f"runs={self.runs} written={self.written} rejected={self.rejected}"
        )


class TierMap:
    """Model id -> tier: the config's tier table, then ``--tier MODEL=N`` given on import."""

    def __init__(self, config: ACOConfig, extra: Mapping[str, int] | None = None) -> None:
        self.tiers = {spec.model_id: spec.tier for spec in config.tiers}
        for model, tier in (extra or {}).items():
            if not isinstance(tier, int) or not tf.MIN_TIER <= tier <= tf.MAX_TIER:
                raise DataError(f"--tier {model}={tier}: expected a tier 1..5")
            self.tiers[model] = tier

    def tier(self, model_id: str) -> int | None:
        """The tier of a model as exports spell it (exact, else without a provider prefix)."""
        found = self.tiers.get(model_id)
        return found if found is not None else self.tiers.get(model_id.rsplit("/", 1)[-1])


def parse_tier_options(values: Sequence[str]) -> dict[str, int]:
    """``MODEL=N`` strings as {model: tier}."""
    out = {}
    for value in values:
        model, sep, tier = value.rpartition("=")
        if not sep or not model or not tier.isdigit():
            raise DataError(f"--tier {value}: expected MODEL=TIER, e.g. gpt-4o-mini=1")
        out[model] = int(tier)
    return out


# -- reading export files ----------------------------------------------------------------------
def read_records(path: Path) -> Iterator[Record]:
    """The JSON objects of a file: one JSON document (an object or an array), or JSON lines."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        yield from (Record(str(path), item, f"[{i}]") for i, item in enumerate(whole))
    elif whole is not None:
        yield Record(str(path), whole)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield Record(f"{path}:{number}", json.loads(line))
            except json.JSONDecodeError as exc:
                yield Record(
                    f"{path}:{number}",
                    RecordError(f"invalid JSON: {exc.msg} near column {exc.colno}"),
                )


def listed(record: Record, key: str) -> Iterator[Record]:
    """The items of a record's list field (``{"data": [...]}``), each with its position."""
    items = record.value.get(key) if isinstance(record.value, Mapping) else None
    if isinstance(items, list):
        prefix = f"{record.path}." if record.path else ""
        yield from (Record(record.location, v, f"{prefix}{key}[{i}]") for i, v in enumerate(items))


# -- field readers: each raises RecordError naming the field -----------------------------------
def count(value: Any, name: str) -> int | None:
    """A token count: an int >= 0 (OTLP/JSON also writes ints as strings), or None."""
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError(f"{name}: expected a token count >= 0, got {value!r:.40}")
    return value


def usd(value: Any, name: str) -> float | None:
    """A cost in USD: a number >= 0 (or its decimal string), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RecordError(f"{name}: expected a cost in USD, got {value!r:.40}") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or not math.isfinite(value)
    ):
        raise RecordError(f"{name}: expected a cost in USD >= 0, got {value!r:.40}")
    return float(value)


def seconds(value: Any, name: str) -> float | None:
    """An RFC 3339 time (or None) as seconds since the epoch."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{name}: expected an RFC 3339 time, got {value!r:.40}")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RecordError(f"{name}: expected an RFC 3339 time, got {value!r:.40}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def text_of(value: Any) -> str:
    """The request text of an export's input: a string, a dict's text, or its last user message."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("input", "question", "query", "request", "prompt", "text", "content"):
            if key in value:
                return text_of(value[key])
        if "messages" in value:
            return text_of(value["messages"])
    if isinstance(value, list) and value:
        users = [m for m in value if isinstance(m, Mapping) and m.get("role") in ("user", "human")]
        last = (users or value)[-1]
        if isinstance(last, Mapping):
            content = last.get("content", last.get("parts", ""))
            if isinstance(content, list):
                return "\n".join(
                    p.get("text") or p.get("content") or ""
                    for p in content
                    if isinstance(p, Mapping)
                )
            return content if isinstance(content, str) else ""
        return last if isinstance(last, str) else ""
    return ""


# -- runs -> traces ----------------------------------------------------------------------------
def build_trace(run: ImportedRun, tiers: TierMap) -> dict[str, Any]:
    """A run as a trace-format-v1 dict (RecordError when a call's model has no tier)."""
    events = sorted([*run.calls, *run.tools], key=lambda e: e.started)
    steps: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    for event in events:
        if isinstance(event, ImportedCall):
            call, source = _model_call(event, tiers)
            sources[cost_path(len(steps))] = source
            steps.append(_step(len(steps) + 1, call))
            continue
        tool = {
            tf.TOOL_NAME: event.name,
            tf.TOOL_SUCCESS: event.success,
            tf.COST: event.cost or 0.0,
        }
        if event.latency_ms is not None:
            tool[tf.LATENCY_MS] = event.latency_ms
        if not steps:  # a tool called before any model call: a step of its own
            steps.append(_step(1, None))
        steps[-1][tf.TOOL_CALLS].append(tool)
    total = math.fsum(
        [s[tf.MODEL_CALL][tf.COST] for s in steps if s[tf.MODEL_CALL]]
        + [t[tf.COST] for s in steps for t in s[tf.TOOL_CALLS]]
    )
    return {
        tf.SCHEMA_VERSION_FIELD: tf.SCHEMA_VERSION,
        tf.TRACE_ID: run.trace_id,
        tf.REQUEST: run.request,
        tf.TIMESTAMP: _rfc3339(run.started),
        tf.SOURCE: run.source,
        tf.STEPS: steps,
        tf.FINAL_OUTCOME: "failed" if run.failed else tf.OUTCOME_COMPLETED,
        tf.TASK_SUCCESS: False if run.failed else run.task_success,
        tf.TOTAL_COST: total,
        tf.METADATA: {**run.metadata, "imported_from": run.where, **cost_metadata(sources)},
    }


def _model_call(event: ImportedCall, tiers: TierMap) -> tuple[dict[str, Any], str]:
    names = [event.model_id] + ([event.alias] if event.alias else [])
    tier = next((t for t in map(tiers.tier, names) if t is not None), None)
    if tier is None:
        name = names[-1]
        raise RecordError(
            f"{event.where}: model {name!r} has no tier; pass "
            f"--tier {name}=N (1..5) or name it in the config's models"
        )
    cost, source = event.cost, COST_REPORTED
    for name in names if cost is None else ():
        priced = price_call(
            name,
            event.input_tokens,
            event.output_tokens,
            event.cached_input_tokens,
            provider=event.provider,
        )
        cost, source = priced.cost, priced.source
        if source != COST_UNPRICED:
            break
    call = {
        tf.MODEL_ID: event.model_id,
        tf.TIER: tier,
        tf.COST: cost,
        tf.INPUT_TOKENS: event.input_tokens,
        tf.OUTPUT_TOKENS: event.output_tokens,
        tf.CACHED_INPUT_TOKENS: event.cached_input_tokens,
    }
    if event.latency_ms is not None:
        call[tf.LATENCY_MS] = event.latency_ms
    return call, source


def _step(number: int, call: dict[str, Any] | None) -> dict[str, Any]:
    return {tf.STEP_NUM: number, tf.MODEL_CALL: call, tf.TOOL_CALLS: [], tf.VERIFIER_CALLED: False}


def _rfc3339(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="microseconds")


# -- the import --------------------------------------------------------------------------------
Reader = Callable[[Iterable[Path]], Parsed]


def import_traces(
    reader: Reader,
    paths: Sequence[str | Path],
    out: str | Path,
    config: ACOConfig | None = None,
    tiers: Mapping[str, int] | None = None,
    on_error: Literal["fail", "skip"] = "fail",
) -> ImportResult:
    """Convert export files to a trace-format-v1 JSONL file (written atomically).

    With on_error="fail" any problem raises DataError and nothing is written; with "skip" the
    runs with a problem are left out and the problems returned.
    """
    parsed = reader(_files(paths))
    problems = parsed.problems
    tier_map = TierMap(config or ACOConfig(), tiers)
    traces = []
    for run in parsed.runs:
        try:
            traces.append(build_trace(run, tier_map))
        except RecordError as exc:
            problems.append(str(exc))
    if problems and on_error == "fail":
        shown = "; ".join(problems[:5])
        raise DataError(
            f"{len(problems)} problem(s), nothing written: {shown}"
            f"{' ...' if len(problems) > 5 else ''}; fix them or pass "
            f"--on-error skip to leave those runs out"
        )
    lines = [
        json.dumps(t, ensure_ascii=False, separators=(",", ":"), allow_nan=False) for t in traces
    ]
    write_bytes(out, "".join(line + "\n" for line in lines).encode("utf-8"))
    return ImportResult(
        parsed.records,
        parsed.skipped,
        parsed.invalid,
        len(parsed.runs) + parsed.bad_runs,
        len(traces),
        tuple(problems),
    )


def _files(paths: Sequence[str | Path]) -> list[Path]:
    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.name.endswith((".json", ".jsonl", ".ndjson"))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{given}: no such file or directory; pass export files or folders")
    if not files:
        raise DataError(f"{', '.join(map(str, paths))}: no .json/.jsonl export files found")
    return files
