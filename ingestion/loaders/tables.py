"""Tables read as rows with their headers: one row is one block, one retrievable, quotable fact.

A table flattened to its cell text ("Leeds York 08:00 08:30 closed") no longer says which value
belongs to which column. Every format with tables (HTML, Markdown, DOCX, PPTX, PDF, CSV,
spreadsheets) turns its table into a `Grid` of cell texts with merged cells spread over the
positions they cover; `row_blocks` then writes each body row as

    Branch opening hours — Branch: Leeds; Weekdays Open: 08:00; Saturday: closed

the caption (or nearest heading) first, then `header: value` per non-empty cell. Column labels
join the header rows' texts at that column, so a merged group header ("Weekdays" over "Open"
and "Close") labels both of its columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ingestion.loaders.common import Block, LoadError
from rag.rows import row_sentence

# Rows of a header: more than this many is a table of labels, not a header.
MAX_HEADER_ROWS = 3
# A table whose cells average more than this many characters is page layout, not data: its
# cells are read as paragraphs.
LAYOUT_CELL_CHARS = 200
# Positions one table may cover once merged cells are spread: a forged colspan/rowspan turns a
# few kilobytes of markup into millions of positions.
MAX_TABLE_CELLS = 200_000
# Grid.spans codes: a position covered by a merged cell's colspan, or by its rowspan.
ACROSS, DOWN = 1, 2
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"^[\d\s.,:%€$£/+-]+$")


def clean(text: Any) -> str:
    """A cell's text on one line (cells hold line breaks; a row must stay one sentence)."""
    return _SPACE.sub(" ", "" if text is None else str(text)).strip()


@dataclass
class Grid:
    """A table's cell texts, merged cells spread (`rows[i][j]` for every position).

    `header` marks cells the source declared as headers (HTML `<th>`); `spans` marks positions a
    merged cell covers beyond its first (`ACROSS` for a colspan copy, `DOWN` for a rowspan
    copy), which tells a group header from a plain first row in formats without `<th>`.
    """

    rows: list[list[str]]
    header: list[list[bool]] = field(default_factory=list)
    spans: list[list[int]] = field(default_factory=list)
    caption: str = ""

    @property
    def width(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    def header_rows(self) -> int:
        """How many leading rows are column headers."""
        if len(self.rows) < 2:
            return 0
        if any(any(r) for r in self.header):
            count = 0
            for flags in self.header[:MAX_HEADER_ROWS]:
                if not flags or not all(flags):
                    break
                count += 1
            # A first row of <th> is the header even if one corner cell is a <td>.
            return count or (1 if sum(self.header[0]) > len(self.header[0]) / 2 else 0)
        count = 1
        # Without markup, a header continues while the row above has merged cells reaching over
        # it (a rowspan from above, or a group header whose colspan needs sub-headers).
        while count < min(MAX_HEADER_ROWS, len(self.rows) - 1):
            above = self.spans[count - 1] if self.spans else []
            below = self.spans[count] if self.spans else []
            merged = ACROSS in above or DOWN in below
            if not merged or looks_like_data(self.rows[count]):
                break
            count += 1
        return count

    def is_layout(self) -> bool:
        cells = [c for r in self.rows for c in r if c]
        return bool(cells) and (
            self.width < 2 or sum(len(c) for c in cells) / len(cells) > LAYOUT_CELL_CHARS
        )


def looks_like_data(row: list[str]) -> bool:
    """A row with a number, time, price or date in it is data, not a header."""
    return any(_NUMBER.match(c) for c in row if c)


def column_labels(grid: Grid, header_rows: int) -> list[str]:
    """Per column, the header rows' texts at it, a merged cell's text said once."""
    labels = []
    for j in range(grid.width):
        parts: list[str] = []
        for row in grid.rows[:header_rows]:
            text = row[j] if j < len(row) else ""
            if text and (not parts or parts[-1] != text):
                parts.append(text)
        labels.append(" ".join(parts))
    return labels


def row_blocks(grid: Grid, heading_path: tuple[str, ...], context: str = "") -> list[Block]:
    """The table as blocks: one per body row with its headers, captioned by the table's own
    caption, else `context` (the nearest heading or the line above the table)."""
    rows = [r for r in grid.rows if any(r)]
    if not rows:
        return []
    if grid.is_layout():
        return [Block(c, heading_path) for r in rows for c in _distinct(r)]
    header_rows = grid.header_rows()
    caption = grid.caption or context
    if header_rows == 0:
        return [Block(row_sentence([], r, caption), heading_path) for r in rows]
    labels = column_labels(grid, header_rows)
    body = grid.rows[header_rows:]
    if not any(any(r) for r in body):  # only a header: say it once
        return [Block(row_sentence([], labels, caption), heading_path)]
    return [Block(row_sentence(labels, r, caption), heading_path) for r in body if any(r)]


def _distinct(row: list[str]) -> list[str]:
    out: list[str] = []
    for cell in row:
        if cell and cell not in out:
            out.append(cell)
    return out


def grid_from_rows(rows: list[list[Any]], caption: str = "", fill_merged: bool = False) -> Grid:
    """A grid from plain rows (CSV, spreadsheets, PDF tables). `fill_merged`: an empty cell
    right of a text in a header-like first row is a merged cell's continuation (extractors give
    None there), which makes the row a group header over the row below (when neither row
    holds data)."""
    width = max((len(r) for r in rows), default=0)
    texts = [[clean(c) for c in r] + [""] * (width - len(r)) for r in rows]
    spans = [[0] * width for _ in texts]
    if fill_merged and len(texts) > 2 and not any(map(looks_like_data, texts[:2])):
        first = texts[0]
        for j in range(1, width):
            if not first[j] and first[j - 1] and texts[1][j]:
                first[j] = first[j - 1]
                spans[0][j] = ACROSS
    return Grid(texts, spans=spans, caption=clean(caption))


def grid_from_html(table: Any) -> Grid:
    """A grid from an lxml `<table>` element: `<th>` kept as headers, rowspan and colspan
    spread over the positions they cover, the `<caption>` kept."""
    placed: dict[tuple[int, int], tuple[str, bool, int]] = {}
    rows = [tr for tr in table.iter("tr") if _owner(tr) is table]
    for i, tr in enumerate(rows):
        j = 0
        for cell in tr:
            if cell.tag not in ("td", "th"):
                continue
            while (i, j) in placed:
                j += 1
            text = clean(cell.text_content())
            rowspan = _span(cell.get("rowspan"))
            colspan = _span(cell.get("colspan"))
            if len(placed) + rowspan * colspan > MAX_TABLE_CELLS:
                raise LoadError(
                    f"a table spreads over more than {MAX_TABLE_CELLS} cells (merged cells "
                    "included): refused as a possible decompression bomb"
                )
            for di in range(rowspan):
                for dj in range(colspan):
                    if i + di < len(rows):
                        span = DOWN if di else ACROSS if dj else 0
                        placed[(i + di, j + dj)] = (text, cell.tag == "th", span)
            j += colspan
    width = max((j for _, j in placed), default=-1) + 1
    grid = Grid([], [], [])
    for i in range(len(rows)):
        cells = [placed.get((i, j), ("", False, 0)) for j in range(width)]
        grid.rows.append([c[0] for c in cells])
        grid.header.append([c[1] for c in cells])
        grid.spans.append([c[2] for c in cells])
    caption = table.find("caption")
    grid.caption = clean(caption.text_content()) if caption is not None else ""
    return grid


def _owner(row: Any) -> Any:
    """The table a `<tr>` belongs to (rows of a nested table belong to that table)."""
    parent = row.getparent()
    while parent is not None and parent.tag != "table":
        parent = parent.getparent()
    return parent


def _span(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 1000))  # a forged colspan must not allocate millions
    except ValueError:
        return 1
