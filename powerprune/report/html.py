"""report.html: the Markdown report rendered by markdown-it-py (CommonMark plus tables), in one
self-contained page. A maintained parser, not a hand-written one: image captions with brackets and
parentheses, emphasis and code spans all follow the CommonMark spec."""

from __future__ import annotations

import html

from markdown_it import MarkdownIt

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
         "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")


COLLAPSED = "All models"  # the section that closes the report: every row, folded away below the findings


def to_html(md: str, title: str) -> str:
    """The page for ``md``; raw HTML in the Markdown is escaped, not passed through. The long table of
    every model (the ``COLLAPSED`` section, the report's last) is folded into a ``<details>`` element, so
    that the page opens on the findings."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    head = f"<h2>{COLLAPSED}"
    if head in body:
        before, _, section = body.partition(head)
        heading, _, rest = section.partition("</h2>")
        body = (f"{before}<details><summary><strong>{COLLAPSED}{heading}</strong> (click to show)</summary>\n"
                f"{rest}</details>\n")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n")
