"""The self-contained HTML page: inline CSS, charts as base64 PNG data URIs, no script, no network."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from hikyuu_qlib.backtest.formats import ABSENT, format_cell, format_measure
from hikyuu_qlib.backtest.measures import Measure

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#f4f6f8;
color:#1d2733}
header{background:#1f3a5a;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;font-size:13px;opacity:.85}
main{max-width:1180px;margin:0 auto;padding:16px 24px 40px}
section{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:18px 0;
padding:14px 20px}
h2{font-size:17px;margin:4px 0 12px;color:#1f3a5a}
img{max-width:100%;height:auto;display:block}
.kpis{display:flex;flex-wrap:wrap;gap:12px}
.kpi{flex:1 1 150px;background:#eef3f8;border-radius:6px;padding:10px 14px}
.kpi b{display:block;font-size:20px} .kpi span{font-size:12px;color:#556}
.tables{display:flex;flex-wrap:wrap;gap:18px} .tables>div{flex:1 1 330px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #e3e7eb;text-align:right}
th:first-child,td:first-child{text-align:left} thead th{background:#eef3f8}
caption{text-align:left;font-weight:600;padding:6px 0}
.neg{color:#c0392b} .pos{color:#1e8449} .note{font-size:12px;color:#667}
td.text{text-align:left} table.glossary{margin-top:8px} table.glossary th{text-align:left}
"""


def _negative(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value < 0


def _cell(value: Any, text: str) -> str:
    cls = ' class="neg"' if _negative(value) else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def mapping_table(caption: str, values: Mapping[str, Any], note: str = "") -> str:
    """A group of statistics, each printed by its kind (:func:`~hikyuu_qlib.backtest.formats.format_measure`)."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th>{_cell(v, format_measure(str(k), v))}</tr>"
        for k, v in values.items()
    )
    extra = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"<table><caption>{html.escape(caption)}</caption><tbody>{rows}</tbody></table>{extra}"


def frame_table(caption: str, frame: pl.DataFrame, *, limit: int = 50) -> str:
    """A frame's first ``limit`` rows, cells printed by their column (shares, ``*_yuan``, weight …)."""
    shown = frame.head(limit)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    body = "".join(
        "<tr>"
        + "".join(_cell(v, format_cell(c, v)) for c, v in zip(shown.columns, row, strict=True))
        + "</tr>"
        for row in shown.iter_rows()
    )
    note = (
        f'<p class="note">{limit} of {frame.height} rows shown; the full table is in the output '
        "directory.</p>"
        if frame.height > limit
        else ""
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{note}"
    )


def statistics_tables(statistics: Mapping[str, Any], notes: Mapping[str, str] | None = None) -> str:
    """Scalars in one table, each nested mapping in its own table (with its note from ``notes``)."""
    flat = {k: (ABSENT.get(k, "none") if v is None else v) for k, v in statistics.items()
            if not isinstance(v, Mapping)}  # fmt: skip
    parts = [mapping_table("Summary", flat)] if flat else []
    parts += [mapping_table(str(k), v, (notes or {}).get(str(k), "")) for k, v in statistics.items()
              if isinstance(v, Mapping)]  # fmt: skip
    return "".join(f"<div>{p}</div>" for p in parts)


def definitions_table(measures: Sequence[Measure]) -> str:
    """The glossary: each statistic's name, kind and definition."""
    rows = "".join(
        f'<tr><th>{html.escape(m.name)}</th><td class="text">{html.escape(m.kind.value)}</td>'
        f'<td class="text">{html.escape(m.definition)}</td></tr>'
        for m in measures
    )
    head = "<thead><tr><th>name</th><th>kind</th><th>definition</th></tr></thead>"
    return f'<table class="glossary"><caption>Definitions</caption>{head}<tbody>{rows}</tbody></table>'


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def kpis(items: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f'<div class="kpi"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>' for k, v in items
    )
    return f'<div class="kpis">{cells}</div>'


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{html.escape(ident)}"><h2>{html.escape(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )
