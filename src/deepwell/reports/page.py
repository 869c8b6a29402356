"""HTML building blocks for the report: escaped tables, inline PNG figures, the page shell (no CDN, no script)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c5cbd6}nav{padding:8px 32px;background:#e9ecf1;font-size:14px}
nav a{margin-right:14px;color:#30476e;text-decoration:none}main{padding:8px 32px 40px;max-width:1180px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 20px 16px;margin:16px 0}
h2{font-size:18px;margin:8px 0 10px}table{border-collapse:collapse;font-size:13.5px;margin:6px 0 10px}
th,td{border-bottom:1px solid #e6e9ee;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.figures{display:flex;flex-wrap:wrap;gap:14px}.figures img{max-width:100%;height:auto;border:1px solid #eee}
.scroll{overflow-x:auto}
.muted{color:#6b7482}.pending{color:#6b7482;font-style:italic}pre{background:#f2f4f7;padding:10px;overflow:auto;
font-size:12.5px;max-height:420px}.good{color:#1a7f37}.bad{color:#b42318}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    text = str(value)
    return f"<td>{esc(text if len(text) <= 80 else text[:77] + '…')}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def figure(fig, alt: str) -> str:
    """A matplotlib figure as an inline PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav>'
            f"<main>{body}</main></body></html>")
