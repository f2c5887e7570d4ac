"""CSV files and Excel workbooks, read row by row with their headers (`tables`).

A workbook's sheets are sections titled by the sheet's name; hidden sheets are skipped and the
job's file result says so. openpyxl reads in read-only mode (rows streamed, memory bounded) and
takes the values Excel cached for formulas: a formula's result, as the user saw it.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ingestion.loaders.common import Block, LoadError, LoadLimits
from ingestion.loaders.tables import grid_from_rows, row_blocks

SHEET_EXTENSIONS = {".xlsx", ".xlsm"}


def csv_blocks(text: str) -> list[Block]:
    """One block per row as `header: value` pairs, so a row reads as a fact and is retrievable."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise LoadError("empty CSV")
    return row_blocks(grid_from_rows(rows), ())


def workbook_blocks(path: Path, limits: LoadLimits) -> tuple[list[Block], list[str]]:
    """Every visible sheet's tables as row blocks, and notes on what was skipped."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises KeyError, ValueError, zip and XML errors
        raise LoadError(f"cannot parse xlsx file: {type(exc).__name__}: {exc}") from exc
    blocks: list[Block] = []
    hidden: list[str] = []
    cells = 0
    try:
        for sheet in book.worksheets:
            if sheet.sheet_state != "visible":
                hidden.append(sheet.title)
                continue
            rows: list[list[str]] = []
            for values in sheet.iter_rows(values_only=True):
                cells += len(values)
                if cells > limits.sheet_max_cells:
                    raise LoadError(
                        f"the workbook has more than {limits.sheet_max_cells} cells, over the "
                        "limit (RAG_SHEET_MAX_CELLS)"
                    )
                rows.append([_cell_text(v) for v in values])
            for caption, region in _regions(rows):
                grid = grid_from_rows(region, caption, fill_merged=True)
                blocks.extend(row_blocks(grid, (sheet.title,), context=sheet.title))
    finally:
        book.close()
    notes = [f"hidden sheets skipped: {', '.join(hidden)}"] if hidden else []
    if not blocks:
        raise LoadError("the workbook has no visible cells with values")
    return blocks, notes


def _regions(rows: list[list[str]]) -> list[tuple[str, list[list[str]]]]:
    """A sheet's tables: runs of rows between empty rows. A run that is one cell (a title typed
    above a table) captions the table below it instead of being a table of its own."""
    runs: list[list[list[str]]] = [[]]
    for row in rows:
        if any(row):
            runs[-1].append(_trim(row))
        elif runs[-1]:
            runs.append([])
    out: list[tuple[str, list[list[str]]]] = []
    caption = ""
    for run in runs:
        if not run:
            continue
        if len(run) == 1 and sum(1 for c in run[0] if c) == 1:
            if caption:
                out.append(("", [[caption]]))
            caption = next(c for c in run[0] if c)
            continue
        out.append((caption, run))
        caption = ""
    if caption:
        out.append(("", [[caption]]))
    return out


def _trim(row: list[str]) -> list[str]:
    end = len(row)
    while end and not row[end - 1]:
        end -= 1
    return row[:end]


def _cell_text(value: Any) -> str:
    """A cell as the sheet shows it: times as 08:05, whole numbers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (
            value.strftime("%Y-%m-%d %H:%M") if value.time() != time() else value.date().isoformat()
        )
    if isinstance(value, time):
        return value.strftime("%H:%M") if not value.second else value.strftime("%H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
