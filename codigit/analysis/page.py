"""What every analysis page shares (the report, the positionality page, the voices section, the memorisation page):
one inlined stylesheet, figures as PNG bytes, tables with every cell escaped."""

from __future__ import annotations

import html
import io

# One stylesheet for every analysis page (this report, `positionality_page`), inlined so a page is one file.
REPORT_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
td, th { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; border-top: 1px solid #ddd; }
.pair h4 { grid-column: 1 / 3; font-size: 1rem; } .pair p { white-space: pre-wrap; }
img { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 1rem 0; } figcaption { font-size: 0.9rem; color: #555; margin-top: 0.3rem; }
nav.contents { background: #f7f7f7; border: 1px solid #ddd; padding: 0.5rem 1rem; display: inline-block; }
nav.contents ol { margin: 0.3rem 0; padding-left: 1.3rem; }
p.methods { font-size: 0.9rem; background: #f7f7fa; border-left: 3px solid #99a; padding: 0.4rem 0.8rem; }
blockquote.excerpt { margin: 0.4rem 0 0.4rem 1rem; padding-left: 0.8rem; border-left: 3px solid #ccc;
  font-style: italic; color: #333; }
mark { background: #fde68a; padding: 0 0.1em; }
ul.excerpts { list-style: none; padding-left: 0; } .scroll table { font-size: 0.85rem; }
ol.references li { margin-bottom: 0.4rem; font-size: 0.9rem; }
"""


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display here or on a server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    pyplot().close(fig)
    return buffer.getvalue()


def html_table(frame) -> str:
    """A DataFrame as an HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = frame.itertuples(index=False)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fmt(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)
