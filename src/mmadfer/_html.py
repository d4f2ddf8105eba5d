"""The building blocks of mmadfer's self-contained HTML pages (the evaluation report, the per-video report).

Self-contained: CSS inline, images as base64 ``data:`` URIs, no script, font or link to anything outside the file,
so a page opens offline and can be forwarded as one file. Accessible: ``lang``, a level-one heading in a
``<header>`` landmark, content in ``<main>``, sections with headings, tables with header cells (``scope``) and
captions, images with alt text, and text colours of at least 4.5:1 contrast on their background (WCAG AA). Every
value shown is escaped.
"""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any, Sequence

from .io import atomic_write

__all__ = ["CSS", "esc", "num", "image", "table", "section", "page", "write_html"]

#: Colours: text #1a202c, muted #4a5568 (7.4:1 on white, 6.9:1 on #f7fafc), header #1a365d with white and #bee3f8.
CSS = """
*{box-sizing:border-box}body{font:14px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:#1a202c;background:#f7fafc;margin:0}main{max-width:1100px;margin:0 auto;padding:24px 32px 48px}
header{background:#1a365d;color:#fff;padding:20px 32px}header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#bee3f8;font-size:13px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:16px 20px;margin:18px 0}
.scroll{overflow-x:auto;max-width:100%}
h2{font-size:17px;margin:0 0 10px;color:#1a365d;border-bottom:2px solid #e2e8f0;padding-bottom:6px}
h3{font-size:14px;margin:14px 0 6px;color:#2d3748}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
caption{text-align:left;color:#4a5568;font-size:13px;padding:2px 0 4px}
th,td{padding:4px 10px;border-bottom:1px solid #edf2f7;text-align:right}thead th{background:#f7fafc;color:#2d3748;
font-weight:600}td:first-child,th:first-child,th.l,td.l{text-align:left}tbody th{font-weight:400}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(130px,1fr));gap:12px}
.card{border:1px solid #e2e8f0;border-radius:6px;
padding:10px 12px;background:#f7fafc}.card .k{font-size:12px;color:#4a5568;text-transform:uppercase;
letter-spacing:.04em}.card .v{font-size:22px;font-weight:600;color:#1a365d}.card .ci,.card .d{font-size:12px;
color:#4a5568}
img{max-width:100%;height:auto;border:1px solid #edf2f7;border-radius:4px;margin:6px 0}
.note{color:#4a5568;font-size:13px}.flag{color:#c53030;font-weight:600}.ok{color:#276749}
.banner{background:#fffaf0;border:2px solid #c05621;border-radius:6px;padding:10px 14px;color:#1a202c}
.verdict{font-size:15px;font-weight:600}
code{background:#edf2f7;padding:1px 4px;border-radius:3px;font-size:12px;word-break:break-all}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:#4a5568}dd{margin:0}
footer{max-width:1100px;margin:0 auto;padding:0 32px 24px}
@media (max-width:600px){main{padding:12px}header{padding:14px 12px}section{padding:12px}}
"""


def esc(x: Any) -> str:
    """``x`` as HTML text (quotes escaped too)."""
    return html.escape(str(x), quote=True)


def num(x: Any, digits: int = 4) -> str:
    """A number for a table: ``–`` for None or NaN, integers as they are, else ``digits`` decimals."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return f"{float(x):.{digits}f}"


def image(source: str | os.PathLike | bytes | None, alt: str) -> str:
    """A PNG (a file or its bytes) inlined as a ``data:`` URI with ``alt`` text; a note when there is none."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif source and Path(source).is_file():
        data = Path(source).read_bytes()
    else:
        return f'<p class="note">({esc(alt)}: chart not available)</p>'
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]], caption: str | None = None,
          text_columns: Sequence[int] = ()) -> str:
    """A table whose first column heads its rows (``<th scope="row">``); ``header=None`` for a key/value list. It
    scrolls sideways on its own when wider than the page (a focusable region, so keyboards can scroll it too).
    Numbers align right; ``text_columns`` (indices) hold prose and align left."""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    left = set(text_columns)
    align = ' class="l"'
    head = "" if header is None else ("<thead><tr>" + "".join(
        f'<th scope="col"{align if i in left else ""}>{esc(h)}</th>' for i, h in enumerate(header)) + "</tr></thead>")
    body = "".join("<tr>" + "".join(f'<th scope="row">{esc(c)}</th>' if i == 0 else
                                    f'<td class="l">{esc(c)}</td>' if i in left else f"<td>{esc(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    keys = list(header) if header else [str(row[0]) for row in rows if len(row)]
    name = esc(caption or f"table: {', '.join(keys[:4])}")  # region names must differ within a page
    return (f'<div class="scroll" tabindex="0" role="region" aria-label="{name}">'
            f"<table>{cap}{head}<tbody>{body}</tbody></table></div>")


def section(title: str, body: str) -> str:
    """A titled section (a level-two heading)."""
    return f"<section><h2>{esc(title)}</h2>{body}</section>"


def page(title: str, subtitle: str, sections: Sequence[str], footer: str = "") -> str:
    """The whole page: a header landmark with the title, the sections in ``<main>``, an optional footer (HTML)."""
    foot = f'<footer><p class="note">{footer}</p></footer>' if footer else ""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><main>{''.join(sections)}</main>"
            f"{foot}</body></html>\n")


def write_html(path: str | os.PathLike, text: str) -> Path:
    """Write a page atomically (UTF-8)."""
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
