"""Sentence boundaries as character spans, so every sentence is an exact substring.

Rule-based and fast: a sentence ends at . ! ? (not after a known abbreviation, an initial or
inside a number) followed by space and a likely sentence start, or at a line break.

    split_sentences("It works. Really?") == [(0, 9), (10, 17)]
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    (
        "e.g i.e etc vs mr mrs ms dr prof inc ltd co corp no fig approx dept est jan feb mar apr "
        "jun jul aug sep sept oct nov dec st ave u.s"
    ).split()
)
# Candidate ends: terminal punctuation (with closing quotes/brackets) then whitespace, or a newline.
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])|\n+")


def _is_abbreviation(text: str, dot: int) -> bool:
    start = dot
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot].lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans (absolute offsets into `text`) of the sentences in text[start:end], trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _END.finditer(text, start, end):
        if match.group(0)[0] == "." and _is_abbreviation(text, match.start()):
            continue
        _append(text, spans, cursor, match.end())
        cursor = match.end()
    _append(text, spans, cursor, end)
    return spans


def _append(text: str, spans: list[tuple[int, int]], a: int, b: int) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        spans.append((a, b))
