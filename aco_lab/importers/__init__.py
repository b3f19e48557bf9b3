"""Traces teams already keep (OpenTelemetry GenAI spans, Langfuse, LangSmith) as trace format v1.

``aco-lab import --from otel|langfuse|langsmith PATHS... --out FILE``; the field mappings are
in each module's docstring and in docs/integrations.md.
"""

from aco_lab.importers.langfuse import read_langfuse
from aco_lab.importers.langsmith import read_langsmith
from aco_lab.importers.otel import read_otel
from aco_lab.importers.records import ImportResult, import_traces, parse_tier_options

READERS = {"otel": read_otel, "langfuse": read_langfuse, "langsmith": read_langsmith}

__all__ = ["READERS", "ImportResult", "import_traces", "parse_tier_options"]
