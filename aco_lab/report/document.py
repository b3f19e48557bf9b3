"""A report as a small document (sections of text, tables, callouts and figures), rendered to
markdown and to a self-contained HTML page, and the JSON/JSONL/CSV text written beside it.

The HTML has its CSS inline, every plot embedded as a base64 PNG, and no external requests, so
the page opens offline; a page with interactive charts (aco_lab/report/charts.py) also carries
its data and the Vega JavaScript inline. Everything is deterministic: keys sorted, floats as
Python's shortest repr, NaN written as null, no timestamps; the same document always gives the
same bytes.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aco.formatting import format_money, format_share
from aco_lab.files import write_text
from aco_lab.report import charts
from aco_lab.report.charts import Chart, Controls

CALLOUT_WARNING = "warning"
CALLOUT_INFO = "info"
CALLOUT_VERDICT = "verdict"  # a report's verdict, when it is good news
CALLOUT_VERDICT_WARN = "verdict-warn"  # ... when it is not


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of already formatted cells under column headers."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    highlight: tuple[int, ...] = ()  # row indexes to emphasise (e.g. the router)


@dataclass(frozen=True, slots=True)
class Figure:
    """A PNG plot with its alternative text."""

    name: str  # stable identifier, e.g. "cost_success"
    png: bytes
    alt: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Callout:
    """A boxed message; warnings are what a reader must not miss (an estimate, an overlap)."""

    text: str
    level: str = CALLOUT_INFO


@dataclass(frozen=True, slots=True)
class Section:
    """A titled part of a report: paragraphs (str), tables, callouts and figures, in order."""

    title: str
    blocks: tuple[str | Table | Figure | Callout | Chart | Controls, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """A whole report."""

    title: str
    sections: tuple[Section, ...]
    callouts: tuple[Callout, ...] = ()  # shown above everything else
    # The named datasets the charts read, as {name: {column: values}}.
    datasets: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 62rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
tr.highlight td { background: #fff6d6; font-weight: 600; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3rem; }
.callout { border-left: 5px solid #1f77b4; background: #eef5fb; padding: .6rem .9rem;
           margin: .8rem 0; }
.callout.warning { border-color: #d62728; background: #fdecea; font-weight: 600; }
.callout.verdict, .callout.verdict-warn { font-size: 1.15rem; font-weight: 600;
           border-color: #2ca02c; background: #edf7ed; }
.callout.verdict-warn { border-color: #e08a00; background: #fff4e0; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
"""


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(doc.title)}</title>",
        f"<style>{_CSS}{charts.CSS if chart_names(doc) else ''}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(doc.title)}</h1>",
    ]
    parts.extend(_callout(c) for c in doc.callouts)
    for section in doc.sections:
        parts.append(f"<h2>{_esc(section.title)}</h2>")
        parts.extend(_block(b) for b in section.blocks)
    if chart_names(doc):
        parts.append(charts.render_scripts(doc.datasets))
    parts.extend(["</body>", "</html>", ""])
    return "\n".join(parts)


def _block(block: str | Table | Figure | Callout | Chart | Controls) -> str:
    if isinstance(block, Chart):
        return charts.render_chart(block)
    if isinstance(block, Controls):
        return charts.render_controls(block)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return _figure(block)
    if isinstance(block, Callout):
        return _callout(block)
    return f"<p>{_esc(block)}</p>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in t.columns)
    rows = []
    for i, row in enumerate(t.rows):
        cls = ' class="highlight"' if i in t.highlight else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>")
    caption = f"<caption>{_esc(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    caption = f"<figcaption>{_esc(f.caption)}</figcaption>" if f.caption else ""
    return (
        f'<figure><img class="plot" data-plot="{_esc(f.name)}" alt="{_esc(f.alt)}" '
        f'src="data:image/png;base64,{data}">{caption}</figure>'
    )


def _callout(c: Callout) -> str:
    return f'<div class="callout {_esc(c.level)}">{_esc(c.text)}</div>'


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def figure_names(doc: Document) -> list[str]:
    """Names of every figure in the document, in order (what a page must show)."""
    return [b.name for s in doc.sections for b in s.blocks if isinstance(b, Figure)]


def chart_names(doc: Document) -> list[str]:
    """Names of every interactive chart in the document, in order."""
    return [b.name for s in doc.sections for b in s.blocks if isinstance(b, Chart)]


def fmt_number(value: float | None, digits: int = 3) -> str:
    """A table cell: `-` for missing, else `digits` significant digits."""
    if value is None or value != value:  # NaN is missing too
        return "-"
    return f"{value:.{digits}g}"


def fmt_pct(value: float | None) -> str:
    """A fraction as a percentage cell (aco.formatting.format_share), `-` for missing."""
    if value is None or value != value:
        return "-"
    return format_share(value)


def fmt_usd(value: float | None) -> str:
    """US dollars (aco.formatting.format_money: $7,931.16, $0.0000802), `-` for missing."""
    if value is None or value != value:
        return "-"
    return format_money(value)


def build_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    caption: str = "",
    highlight: Sequence[int] = (),
) -> Table:
    """A Table from plain sequences."""
    return Table(tuple(columns), tuple(tuple(r) for r in rows), caption, tuple(highlight))


def render_markdown(doc: Document) -> str:
    """The document as GitHub-flavoured markdown (figures are named; they live in the HTML)."""
    lines = [f"# {doc.title}", ""]
    for callout in doc.callouts:
        lines += [_md_callout(callout), ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if not isinstance(block, Controls):  # filters act on the HTML page's charts only
                lines += [_md_block(block), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _md_block(block: str | Table | Figure | Callout | Chart) -> str:
    if isinstance(block, Chart):
        return f"*Chart `{block.name}`: {block.alt} (interactive, in the HTML report).*"
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figure):
        return f"*Figure `{block.name}`: {block.alt} (see the HTML report).*"
    if isinstance(block, Callout):
        return _md_callout(block)
    return block


def _md_callout(c: Callout) -> str:
    prefix = {
        CALLOUT_WARNING: "**WARNING:** ",
        CALLOUT_VERDICT: "**Verdict:** ",
        CALLOUT_VERDICT_WARN: "**Verdict:** ",
    }.get(c.level, "")
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


def write_document(doc: Document, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
    """Write `<stem>.md` and the self-contained `<stem>.html` of a document."""
    out = Path(out_dir)
    md = write_text(out / f"{stem}.md", render_markdown(doc))
    page = write_text(out / f"{stem}.html", render_html(doc))
    return md, page
