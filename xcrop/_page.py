"""One document, two renderings: Markdown (a folder's README) and a self-contained HTML page.

A document is a list of blocks, plain tuples:

- ``("h1", text)``, ``("h2", text)``: headings;
- ``("p", text)``: a paragraph; ``("note", text)``: a paragraph set apart (a warning);
- ``("ul", [text, ...])``: a list;
- ``("table", markdown)``: a Markdown pipe table (as :func:`xcrop._evaluation.to_markdown`
  writes them), rendered as an HTML table;
- ``("img", path, caption)``: a PNG in the folder: linked from the Markdown, embedded in
  the HTML as a base64 data URI, so the page needs nothing beside it;
- ``("files", [(name, note), ...])``: a list of the folder's files, each linked.

Text may hold ``code`` in backticks. The HTML has its style inline and no script, font or
image from elsewhere: it opens offline.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from .errors import XcropInputError

__all__ = ["to_markdown", "to_html"]

Block = tuple

_CODE = re.compile(r"`([^`]+)`")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.45;
       color: #1b1b1b; margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 64rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
code { background: #f2f2f2; padding: 0 0.2em; overflow-wrap: anywhere; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.6rem 0.9rem; }
.table { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.9rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; max-width: 32rem; }
li { overflow-wrap: anywhere; }
"""


def _inline(text: str) -> str:
    """Escaped text, backticks as ``<code>``."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_html(markdown: str) -> str:
    lines = [line for line in markdown.strip().splitlines() if line.strip()]
    if len(lines) < 2 or not set(lines[1]) <= set("|-: "):
        raise XcropInputError(f"Not a Markdown pipe table (header, then |---|): {markdown[:80]!r}")
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    rows = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(line)) + "</tr>\n"
        for line in lines[2:]
    )
    return f'<div class="table"><table>\n<tr>{head}</tr>\n{rows}</table></div>'


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_markdown(blocks: Sequence[Block]) -> str:
    """The document as Markdown; images and files as links relative to the folder.

    Parameters
    ----------
    blocks
        The document (see the module docstring).

    Returns
    -------
    str
        Markdown text, ending with a newline.
    """
    out = []
    for kind, *args in blocks:
        if kind == "h1":
            out.append(f"# {args[0]}")
        elif kind == "h2":
            out.append(f"## {args[0]}")
        elif kind == "p":
            out.append(args[0])
        elif kind == "note":
            out.append(f"> **{args[0]}**")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in args[0]))
        elif kind == "table":
            out.append(args[0].strip())
        elif kind == "img":
            path, caption = Path(args[0]), args[1]
            out.append(f"![{caption}]({path.name})\n\n*{caption}*")
        elif kind == "files":
            out.append("\n".join(f"- [`{name}`]({name}): {note}" for name, note in args[0]))
        else:
            raise XcropInputError(
                f"Unknown block {kind!r}: use one of h1 h2 p note ul table img files."
            )
    return "\n\n".join(out) + "\n"


def to_html(blocks: Sequence[Block], title: str) -> str:
    """The document as one HTML page: style inline, images embedded, nothing fetched.

    Parameters
    ----------
    blocks
        The document (see the module docstring); ``img`` paths must exist.
    title
        The page's ``<title>``.

    Returns
    -------
    str
        The page.
    """
    body: list[str] = []
    figures: list[str] = []

    def flush() -> None:
        if figures:
            body.append('<div class="figures">\n' + "\n".join(figures) + "\n</div>")
            figures.clear()

    for kind, *args in blocks:
        if kind != "img":
            flush()
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{_inline(args[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(args[0])}</p>")
        elif kind == "note":
            body.append(f'<p class="note"><strong>{_inline(args[0])}</strong></p>')
        elif kind == "ul":
            body.append("<ul>\n" + "\n".join(f"<li>{_inline(i)}</li>" for i in args[0]) + "</ul>")
        elif kind == "table":
            body.append(_table_html(args[0]))
        elif kind == "img":
            path, caption = Path(args[0]), html.escape(args[1])
            figures.append(
                f'<figure><img src="{_data_uri(path)}" alt="{caption}">'
                f"<figcaption>{caption} (<code>{html.escape(path.name)}</code>)</figcaption>"
                "</figure>"
            )
        elif kind == "files":
            items = (
                f'<li><a href="{html.escape(name)}"><code>{html.escape(name)}</code></a>: '
                f"{_inline(note)}</li>"
                for name, note in args[0]
            )
            body.append("<ul>\n" + "\n".join(items) + "\n</ul>")
        else:
            raise XcropInputError(
                f"Unknown block {kind!r}: use one of h1 h2 p note ul table img files."
            )
    flush()
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
