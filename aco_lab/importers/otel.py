"""OpenTelemetry traces (OTLP/JSON) that follow the GenAI semantic conventions, as runs.

A file is one OTLP/JSON export (``{"resourceSpans": [...]}``) or JSON lines of them (what the
collector's file exporter writes). Spans are grouped into runs by ``traceId``; a run's steps
are its model-call spans in start order, each tool span joining the model call before it. The
field mapping is in docs/integrations.md; in short:

- ``gen_ai.operation.name``: ``chat``, ``text_completion``, ``generate_content``,
  ``embeddings`` are model calls (so is a span without it that names a model);
  ``execute_tool`` a tool call (an error status, or ``error.type``, is a failed call);
  ``invoke_agent``/``create_agent``/``invoke_workflow`` give the request and the outcome;
  any other span is skipped (counted);
- the model is ``gen_ai.response.model``, else ``gen_ai.request.model``; the provider
  ``gen_ai.provider.name``, else the older ``gen_ai.system``;
- tokens: ``gen_ai.usage.input_tokens``/``output_tokens``, else the older
  ``prompt_tokens``/``completion_tokens``; cached: ``gen_ai.usage.cache_read.input_tokens``;
- cost: ``gen_ai.usage.cost`` where an instrumentation records it, else priced from the
  snapshot (aco.prices);
- a run whose root span (or agent span) has an error status is ``failed``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aco_lab.importers.records import (
    ImportedCall,
    ImportedRun,
    ImportedTool,
    Parsed,
    Record,
    RecordError,
    count,
    listed,
    read_records,
    text_of,
    usd,
)

SOURCE = "otel"
MODEL_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings")
TOOL_OPERATION = "execute_tool"
AGENT_OPERATIONS = ("invoke_agent", "create_agent", "invoke_workflow")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")  # new, then old
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHED_TOKENS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
COSTS = ("gen_ai.usage.cost", "gen_ai.usage.total_cost")
MODELS = ("gen_ai.response.model", "gen_ai.request.model")
PROVIDERS = ("gen_ai.provider.name", "gen_ai.system")
STATUS_ERROR = (2, "STATUS_CODE_ERROR")


@dataclass(frozen=True, slots=True)
class Span:
    """The parts of an OTLP span the import reads."""

    where: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start: float  # seconds since the epoch
    end: float | None
    attributes: Mapping[str, Any]
    error: bool

    @property
    def operation(self) -> str | None:
        """The GenAI operation, or "chat" for a span that names a model without one."""
        op = self.attributes.get("gen_ai.operation.name")
        if op is None and any(k in self.attributes for k in MODELS):
            return "chat"
        return op

    @property
    def latency_ms(self) -> float | None:
        """Span duration in milliseconds."""
        return None if self.end is None else max(self.end - self.start, 0.0) * 1000.0


def read_otel(files: Iterable[Path]) -> Parsed:
    """Runs from OTLP/JSON files (grouped by traceId over all files)."""
    parsed = Parsed()
    spans: dict[str, list[Span]] = {}
    bad: dict[str, str] = {}  # trace id -> its first problem
    for path in files:
        for record in read_records(path):
            if isinstance(record.value, RecordError):
                parsed.records += 1
                parsed.invalid += 1
                parsed.problems.append(f"{record.where}: {record.value}")
                continue
            for raw, resource in _raw_spans(record):
                parsed.records += 1
                try:
                    span = parse_span(raw, resource)
                except RecordError as exc:
                    trace_id = _trace_id_or_none(raw.value)
                    parsed.problems.append(f"{raw.where}: {exc}")
                    if trace_id is None:
                        parsed.invalid += 1
                        continue
                    bad.setdefault(trace_id, str(exc))
                    spans.setdefault(trace_id, [])
                    continue
                spans.setdefault(span.trace_id, []).append(span)
    for trace_id, group in spans.items():
        if trace_id in bad:
            parsed.bad_runs += 1
            continue
        try:
            run, skipped = build_run(trace_id, group)
        except RecordError as exc:
            parsed.problems.append(str(exc))
            parsed.bad_runs += 1
            continue
        parsed.skipped += skipped
        if run is None:  # no GenAI span at all: not an agent run
            continue
        parsed.runs.append(run)
    return parsed


def _raw_spans(record: Record) -> Iterator[tuple[Record, Mapping[str, Any]]]:
    """Every span of an OTLP/JSON document, with its resource's attributes."""
    for resource_spans in listed(record, "resourceSpans"):
        resource = (
            resource_spans.value.get("resource")
            if isinstance(resource_spans.value, Mapping)
            else None
        )
        attrs = _attributes(resource.get("attributes")) if isinstance(resource, Mapping) else {}
        for key in ("scopeSpans", "instrumentationLibrarySpans"):
            for scope_spans in listed(resource_spans, key):
                for span in listed(scope_spans, "spans"):
                    yield span, attrs


def parse_span(record: Record, resource: Mapping[str, Any]) -> Span:
    """One span (RecordError names the field that is wrong)."""
    raw = record.value
    if not isinstance(raw, Mapping):
        raise RecordError(f"expected a span object, got {type(raw).__name__}")
    trace_id = _trace_id_or_none(raw)
    if trace_id is None:
        raise RecordError("traceId: required, a hex string")
    start = _nanos(raw.get("startTimeUnixNano"), "startTimeUnixNano")
    if start is None:
        raise RecordError("startTimeUnixNano: required")
    status = raw.get("status") or {}
    attributes = {**resource, **_attributes(raw.get("attributes"))}
    return Span(
        record.where,
        trace_id,
        _id(raw.get("spanId")),
        _id(raw.get("parentSpanId")),
        str(raw.get("name", "")),
        start,
        _nanos(raw.get("endTimeUnixNano"), "endTimeUnixNano"),
        attributes,
        status.get("code") in STATUS_ERROR,
    )


def build_run(trace_id: str, spans: list[Span]) -> tuple[ImportedRun | None, int]:
    """A run from one trace's spans, and how many spans were skipped (RecordError: bad span)."""
    spans = sorted(spans, key=lambda s: s.start)
    ids = {s.span_id for s in spans}
    run = ImportedRun(trace_id, SOURCE, spans[0].where, started=spans[0].start, records=len(spans))
    skipped, request = 0, None
    for span in spans:
        op = span.operation
        is_root = not span.parent_id or span.parent_id not in ids
        if span.error and (is_root or op in AGENT_OPERATIONS):
            run.failed = True
        if op in MODEL_OPERATIONS:
            run.calls.append(_call(span))
            request = request or _request(span)
        elif op == TOOL_OPERATION:
            run.tools.append(
                ImportedTool(
                    span.where,
                    str(span.attributes.get("gen_ai.tool.name") or span.name),
                    not (span.error or "error.type" in span.attributes),
                    span.start,
                    latency_ms=span.latency_ms,
                )
            )
        elif op in AGENT_OPERATIONS:
            request = request or _request(span)
        else:  # HTTP, database, framework spans: not a model or tool call
            skipped += 1
    if not run.calls and not run.tools:
        return None, len(spans)
    root = next((s for s in spans if not s.parent_id or s.parent_id not in ids), spans[0])
    run.request = request or root.name
    return run, skipped


def _call(span: Span) -> ImportedCall:
    a = span.attributes
    model = _first(a, MODELS)
    if not isinstance(model, str) or not model:
        raise RecordError(f"{span.where}: gen_ai.request.model: a model call names no model")
    try:
        return ImportedCall(
            span.where,
            model,
            span.start,
            provider=_first(a, PROVIDERS),
            input_tokens=count(_first(a, INPUT_TOKENS), "gen_ai.usage.input_tokens"),
            output_tokens=count(_first(a, OUTPUT_TOKENS), "gen_ai.usage.output_tokens"),
            cached_input_tokens=count(
                _first(a, CACHED_TOKENS), "gen_ai.usage.cache_read.input_tokens"
            ),
            cost=usd(_first(a, COSTS), "gen_ai.usage.cost"),
            latency_ms=span.latency_ms,
            alias=a.get("gen_ai.request.model"),
        )
    except RecordError as exc:
        raise RecordError(f"{span.where}: {exc}") from None


def _request(span: Span) -> str | None:
    """The user request a span carries: input messages (new or old attributes)."""
    a = span.attributes
    for key in ("gen_ai.input.messages", "gen_ai.prompt"):
        value = a.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return value
        text = text_of(value) if value is not None else ""
        if text:
            return text
    indexed = sorted(
        (k for k in a if k.startswith("gen_ai.prompt.") and k.endswith(".content")),
        key=lambda k: int(k.split(".")[2]) if k.split(".")[2].isdigit() else 0,
    )
    users = [a[k] for k in indexed if a.get(k.replace(".content", ".role")) == "user"]
    return (users or [a[k] for k in indexed] or [None])[-1]


def _first(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((attributes[k] for k in keys if attributes.get(k) is not None), None)


def _attributes(items: Any) -> dict[str, Any]:
    """OTLP's [{"key", "value": {"stringValue": ...}}] as a plain dict."""
    out = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):
            out[item["key"]] = _value(item.get("value"))
    return out


def _value(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in value:
            return value[kind]
    if "intValue" in value:  # an int64: a string in OTLP/JSON
        raw = value["intValue"]
        return int(raw) if isinstance(raw, str) and raw.lstrip("-").isdigit() else raw
    if "arrayValue" in value:
        return [_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return _attributes((value["kvlistValue"] or {}).get("values"))
    return None


def _nanos(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"{name}: expected nanoseconds since the epoch, got {value!r:.40}")
    return value / 1e9


def _id(value: Any) -> str:
    """A span or trace id as hex (OTLP/JSON writes hex; protobuf's JSON mapping base64)."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        int(value, 16)
        return value.lower()
    except ValueError:
        pass
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return value


def _trace_id_or_none(raw: Any) -> str | None:
    trace_id = _id(raw.get("traceId")) if isinstance(raw, Mapping) else ""
    return trace_id or None
