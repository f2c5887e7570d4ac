"""Markdown, HTML, DOCX, PPTX, mail and plain text through unstructured (with the offline spaCy
fix), their tables read as rows with their headers (`tables`).

unstructured's own table HTML drops `<th>`, `<caption>`, rowspan and colspan for HTML input, so
HTML (and Markdown, which becomes HTML) tables are read from the source markup: each top-level
`<table>` is swapped for a marker paragraph before partitioning and its rows put back where the
marker lands, under the heading it sits under. For DOCX and PPTX unstructured's table HTML keeps
the spans, and is what is read.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingestion.loaders.common import Block
from ingestion.loaders.tables import Grid, grid_from_html, row_blocks
from ingestion.offline import prepare_unstructured

# Imported on first use: each unstructured partitioner pulls in its own parsing stack.
_PARTITIONERS = {
    ".html": ("html", "partition_html"),
    ".htm": ("html", "partition_html"),
    ".docx": ("docx", "partition_docx"),
    ".pptx": ("pptx", "partition_pptx"),
    ".eml": ("email", "partition_email"),
    ".txt": ("text", "partition_text"),
}
MARKDOWN_EXTENSIONS = ["tables", "fenced_code"]  # what unstructured's partition_md uses


def markup_blocks(ext: str, text: str | None = None, filename: Path | None = None) -> list[Block]:
    """Blocks of a markup or office file: `text` for text formats, `filename` for binary ones."""
    prepare_unstructured()
    tables: dict[str, Grid] = {}
    if ext in (".md", ".markdown"):
        import markdown

        text = markdown.markdown(text or "", extensions=MARKDOWN_EXTENSIONS)
        ext = ".html"
    if ext in (".html", ".htm") and text is not None and "<table" in text.lower():
        text, tables = _lift_tables(text)
    kwargs: dict[str, Any] = {"text": text} if text is not None else {"filename": str(filename)}
    module, function = _PARTITIONERS.get(ext, ("text", "partition_text"))
    partition: Callable[..., list[Any]] = getattr(
        importlib.import_module(f"unstructured.partition.{module}"), function
    )
    return blocks_from_elements(partition(**kwargs), headings=ext != ".txt", tables=tables)


def blocks_from_elements(
    elements: list[Any], headings: bool, tables: dict[str, Grid] | None = None
) -> list[Block]:
    """Titles open a heading level (by depth); everything else belongs to the current path.
    Tables become one block per row (a table whose cells cannot be read stays one block of its
    text); `tables` are those lifted out of HTML, by marker, put back where the marker lands."""
    tables = tables or {}
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for el in elements:
        text = (getattr(el, "text", "") or "").strip()
        if not text:
            continue
        path = tuple(t for _, t in stack)
        lifted = tables.get(text)
        if lifted is not None:
            blocks.extend(row_blocks(lifted, path, context=path[-1] if path else ""))
            continue
        grid = _table_html(el)
        rows = row_blocks(grid, path, context=path[-1] if path else "") if grid else []
        if rows:
            blocks.extend(rows)
            continue
        if headings and getattr(el, "category", "") == "Title":
            depth = getattr(el.metadata, "category_depth", None) or 0
            while stack and stack[-1][0] >= depth:
                stack.pop()
            stack.append((depth, text))
            path = tuple(t for _, t in stack)
        blocks.append(Block(text, path))
    return blocks


def _table_html(element: Any) -> Grid | None:
    """The grid of a table element from the table HTML unstructured made (DOCX, PPTX, mail)."""
    html = getattr(getattr(element, "metadata", None), "text_as_html", None)
    if getattr(element, "category", "") != "Table" or not html:
        return None
    import lxml.html

    table = lxml.html.fragment_fromstring(html, create_parent="div").find(".//table")
    return grid_from_html(table) if table is not None else None


def _lift_tables(html: str) -> tuple[str, dict[str, Grid]]:
    """The page with each top-level table replaced by a marker paragraph, and the tables by
    marker. A marker carries a random token, so no text of the page can pose as one."""
    import lxml.html

    root = lxml.html.document_fromstring(html)
    token = secrets.token_hex(8)
    grids: dict[str, Grid] = {}
    for table in list(root.iter("table")):
        if any(a.tag == "table" for a in table.iterancestors()):
            continue  # nested: read as part of the table that holds it
        marker = lxml.html.Element("p")
        marker.text = f"ragops-table-{token}-{len(grids)}"
        marker.tail = table.tail
        grids[marker.text] = grid_from_html(table)
        table.getparent().replace(table, marker)
    return lxml.html.tostring(root, encoding="unicode"), grids
