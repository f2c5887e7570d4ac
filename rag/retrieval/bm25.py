"""BM25 as Qdrant sparse vectors.

Documents carry Lucene's saturated term frequency `tf*(k1+1)/(tf + k1*(1-b+b*dl/avgdl))`;
queries carry 1.0 per unique term; the collection's sparse field has `modifier=IDF`, so the
engine multiplies by Lucene's `ln(1 + (N-n+0.5)/(n+0.5))` at query time. The dot product is
then exactly Lucene BM25, with IDF always current and computed by the engine.

    enc = BM25Encoder(); vec = enc.encode_document("Reset the VPN token", avgdl=12.0)
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from functools import lru_cache

import Stemmer

from rag.types import SparseVector

# A clock time or a decimal ("08:35", "4.50") is one term as well as its digit runs: a timetable
# row about the 08:35 bus must outscore the 07:35 one, which shares the runs "08" and "35".
# The runs stay terms, so an index written before compound terms still matches them.
_WORD = re.compile(r"\d+(?:[:.]\d+)+|\w+", re.UNICODE)
_DIGIT_RUN = re.compile(r"\d+")

# Lucene's classic English stop set: words that carry no retrieval signal.
STOPWORDS = frozenset(
    (
        "a an and are as at be but by for if in into is it no not of on or such that the their "
        "then there these they this to was will with"
    ).split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def tokenize(text: str) -> list[str]:
    """Lowercased, stop words dropped, Snowball-stemmed terms; a time or decimal also as its
    digit runs (`"08:35"` -> `"08:35", "08", "35"`)."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word[0].isdigit() and not word.isalnum():
            terms.append(word)
            terms.extend(_DIGIT_RUN.findall(word))
        elif word not in STOPWORDS:
            terms.append(_stem(word))
    return terms


def term_id(term: str) -> int:
    # crc32 is stable across processes and machines (unlike hash()), and fits Qdrant's u32 ids.
    return zlib.crc32(term.encode("utf-8"))


class BM25Encoder:
    """Turns text into BM25 sparse vectors for the engine to score."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    def document_length(self, text: str) -> int:
        return len(tokenize(text))

    def encode_document(self, text: str, avgdl: float) -> SparseVector:
        counts = Counter(tokenize(text))
        dl = sum(counts.values())
        norm = self.k1 * (1.0 - self.b + self.b * dl / max(avgdl, 1e-9))
        merged: dict[int, float] = {}
        for term, tf in counts.items():
            tid = term_id(term)
            # On a (rare) crc32 collision the two terms share one dimension; keep the larger.
            merged[tid] = max(merged.get(tid, 0.0), tf * (self.k1 + 1.0) / (tf + norm))
        indices = sorted(merged)
        return SparseVector(indices=indices, values=[merged[i] for i in indices])

    def encode_query(self, text: str) -> SparseVector:
        indices = sorted({term_id(t) for t in tokenize(text)})
        return SparseVector(indices=indices, values=[1.0] * len(indices))
