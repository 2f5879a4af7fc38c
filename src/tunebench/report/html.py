"""Render the document as one self-contained HTML file: inline styles, figures as data URIs, no
scripts and no external references.  Every piece of text is escaped here, in one place."""

from __future__ import annotations

import base64
from html import escape

from tunebench.report.document import Block, Bullets, Code, Document, Figure, Para, Section, Table

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
main{max-width:1180px;margin:0 auto;padding:1.5rem 2rem 4rem}
nav{position:sticky;top:0;background:#1d2330;padding:.5rem 2rem;z-index:1}
nav a{color:#dbe4f0;margin-right:1rem;text-decoration:none;font-size:13px}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:2px solid #dfe3ea;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:12.5px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #dfe3ea;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#eef1f6}td.best{background:#e3f4e1;font-weight:600}
caption{caption-side:bottom;text-align:left;color:#5a6273;font-size:12px;padding-top:.3rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #e4e7ec;background:#fff}
figcaption{color:#5a6273;font-size:12px}
pre{background:#f0f2f6;padding:.8rem;overflow-x:auto;font-size:12px}
"""


def render_html(doc: Document) -> str:
    nav = "".join(f'<a href="#{escape(s.key)}">{escape(s.title)}</a>' for s in doc.sections)
    body = "\n".join(_section(s) for s in doc.sections)
    intro = "".join(f"<p>{escape(p)}</p>" for p in doc.intro)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(doc.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<nav>{nav}</nav>\n<main>\n<h1>{escape(doc.title)}</h1>\n{intro}\n{body}\n</main>\n</body>\n</html>\n")


def _section(section: Section) -> str:
    blocks = "\n".join(_block(b) for b in section.blocks)
    return f'<section id="{escape(section.key)}">\n<h2>{escape(section.title)}</h2>\n{blocks}\n</section>'


def _block(block: Block) -> str:
    if isinstance(block, Para):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Code):
        return f"<pre>{escape(block.text)}</pre>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        return (f'<figure><img alt="{escape(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(block.caption)}</figcaption></figure>")
    return _table(block)


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cells = []
        for c in row:
            classes = " ".join(x for x in ("num" if c.value is not None else "", "best" if c.best else "") if x)
            attrs = (f' class="{classes}"' if classes else "") + (
                f' data-value="{escape(repr(c.value))}"' if c.value is not None else "")
            cells.append(f"<td{attrs}>{escape(c.text)}{' ★' if c.best else ''}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    key = f' data-table="{escape(table.key)}"' if table.key else ""
    return f"<table{key}>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
