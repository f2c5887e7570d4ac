"""A table row as one sentence, the form ingestion writes and the answerer reads:

    Branch opening hours — Branch: Leeds; Weekdays Open: 08:00; Saturday: closed

the caption (or nearest heading) first, then `label: value` per non-empty cell. One place for
the form, so the reader of a row (`row_cells`) cannot drift from its writer (`row_sentence`).
"""

from __future__ import annotations

CAPTION = " — "
CELLS = "; "
LABEL = ": "


def row_sentence(labels: list[str], row: list[str], caption: str = "") -> str:
    """`Caption — label: value; label: value`, empty cells left out; a value under no label
    (a row header under an empty corner) stands alone."""
    pairs = []
    for j, value in enumerate(row):
        if not value:
            continue
        label = labels[j] if j < len(labels) else ""
        pairs.append(f"{label}{LABEL}{value}" if label and label != value else value)
    body = CELLS.join(pairs)
    return f"{caption}{CAPTION}{body}" if caption and body else body


# A column label is a few words: prose with a colon and a semicolon ("George Avakian
# (Armenian: ...; ...)") is no row.
MAX_LABEL_WORDS = 6


def row_cells(sentence: str) -> list[tuple[str, str]] | None:
    """A row sentence's `(label, value)` cells in column order (label "" for a value that
    stands alone), or None when the sentence is not a row of at least two labelled cells."""
    body = sentence.split(CAPTION, 1)[-1]
    cells = []
    for cell in body.split(CELLS):
        label, sep, value = cell.partition(LABEL)
        cells.append((label.strip(), value.strip()) if sep else ("", cell.strip()))
    labels = [label for label, _ in cells if label]
    if len(cells) < 2 or len(labels) < 2:
        return None
    if any(len(label.split()) > MAX_LABEL_WORDS or set(label) & set('()[]"') for label in labels):
        return None
    return cells
