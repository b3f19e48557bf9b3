"""Writing reports: report.md from a Document, and the JSON/JSONL/CSV files beside it.

Every writer is atomic (a temp file in the target directory, then os.replace) and
deterministic: keys sorted, floats as Python's shortest repr, NaN written as null, no
timestamps. The same evaluation therefore always gives the same bytes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aco_lab.html_report import Callout, Document, Figure, Table, render_html

METRICS_FILE = "metrics.json"
DECISIONS_FILE = "decisions.jsonl"
SWEEP_FILE = "sweep.csv"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def render_markdown(doc: Document) -> str:
    """The document as GitHub-flavoured markdown (figures are named; they live in the HTML)."""
    lines = [f"# {doc.title}", ""]
    for callout in doc.callouts:
        lines += [_md_callout(callout), ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += [_md_block(block), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _md_block(block: str | Table | Figure | Callout) -> str:
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figure):
        return f"*Figure `{block.name}`: {block.alt} (see the HTML report).*"
    if isinstance(block, Callout):
        return _md_callout(block)
    return block


def _md_callout(c: Callout) -> str:
    prefix = "**WARNING:** " if c.level == "warning" else ""
    return f"> {prefix}{c.text}"


def _md_table(t: Table) -> str:
    def cell(text: str, bold: bool) -> str:
        text = str(text).replace("|", "\\|")
        return f"**{text}**" if bold and text else text

    out = [f"*{t.caption}*", ""] if t.caption else []
    out.append("| " + " | ".join(cell(c, False) for c in t.columns) + " |")
    out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.columns))) + "|")
    for i, row in enumerate(t.rows):
        out.append("| " + " | ".join(cell(v, i in t.highlight) for v in row) + " |")
    return "\n".join(out)


def to_json_value(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, tuples lists, keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return to_json_value(value.item())
    return value


def dumps_json(data: Any) -> str:
    """Deterministic pretty JSON (sorted keys, NaN as null), newline-terminated."""
    return json.dumps(to_json_value(data), sort_keys=True, indent=2, allow_nan=False) + "\n"


def dumps_jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    """One compact JSON object per line, keys sorted."""
    return "".join(
        json.dumps(to_json_value(r), sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
        for r in records
    )


def dumps_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small CSV: numbers as repr, None/NaN empty, no quoting needed for our columns."""

    def cell(v: Any) -> str:
        v = to_json_value(v)
        return "" if v is None else str(v)

    lines = [",".join(columns)] + [",".join(cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (temp file beside it, then rename)."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a file atomically (temp file beside it, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; a report is as readable as any file
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_document(doc: Document, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
    """Write `<stem>.md` and the self-contained `<stem>.html` of a document."""
    out = Path(out_dir)
    md = write_text(out / f"{stem}.md", render_markdown(doc))
    page = write_text(out / f"{stem}.html", render_html(doc))
    return md, page
