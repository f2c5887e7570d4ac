"""Chunks follow meaning and structure, fit the model, and carry the model's own embedding."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from ingestion.chunking import SemanticChunker
from ingestion.loaders import Block, assemble
from rag.answering.sentences import split_sentences

pytestmark = pytest.mark.integration

CATS = [
    "Cats sleep for most of the day, often sixteen hours.",
    "A cat grooms its fur with its rough tongue.",
    "Kittens learn to hunt by watching their mother.",
    "Cats purr when they are content and sometimes when they are stressed.",
    "Domestic cats descend from the African wildcat.",
    "A cat's whiskers help it judge whether it fits through a gap.",
]
TAXES = [
    "The tax return must be filed before the end of April.",
    "Capital gains are taxed at a lower rate than wages.",
    "Deductions for charitable donations need a receipt.",
    "Late payment of income tax incurs interest every month.",
    "Married couples may file a joint return.",
    "The tax office sends an assessment within three months.",
]


def _doc(blocks):
    return assemble("d.md", blocks, "file:///d.md", "D", datetime.now(UTC))


@pytest.mark.unit
def test_sentence_spans_are_exact_and_skip_abbreviations():
    text = "Dr. Smith met Mr. Jones at 3.5 p.m. on Monday. They talked e.g. about cats!\nNew line"
    spans = split_sentences(text)
    sentences = [text[a:b] for a, b in spans]
    assert sentences == [
        "Dr. Smith met Mr. Jones at 3.5 p.m. on Monday.",
        "They talked e.g. about cats!",
        "New line",
    ]


def test_chunks_are_exact_substrings_within_sections_and_under_cap(embedder):
    doc = _doc([Block(" ".join(CATS * 3), ("Cats",)), Block(" ".join(TAXES * 3), ("Taxes",))])
    chunker = SemanticChunker(embedder, max_tokens=60, min_tokens=10)
    chunks = chunker.chunk_documents([doc])[0]
    assert len(chunks) >= 4
    for piece in chunks:
        c = piece.chunk
        assert doc.text[c.char_start : c.char_end] == c.text
        assert piece.token_count <= 60
        section = next(s for s in doc.sections if s.start <= c.char_start < s.end)
        assert c.char_end <= section.end, "a chunk crossed a section boundary"
        assert c.section == section.heading_path[0]
    assert [p.chunk.index for p in chunks] == list(range(len(chunks)))


def test_topic_shift_inside_a_section_is_a_cut(embedder):
    doc = _doc([Block(" ".join(CATS + TAXES), ())])
    chunker = SemanticChunker(embedder, max_tokens=200, min_tokens=10, breakpoint_percentile=80)
    chunks = chunker.chunk_documents([doc])[0]
    texts = [p.chunk.text for p in chunks]
    boundary = doc.text.index(TAXES[0])
    assert any(p.chunk.char_start == boundary for p in chunks), texts


def test_whole_window_chunk_vector_equals_model_embedding(embedder):
    assert embedder.late_pooling, "MiniLM mean-pools: chunks must be embedded in one pass"
    doc = _doc([Block(CATS[0] + " " + CATS[1], ())])
    chunks = SemanticChunker(embedder).chunk_documents([doc])[0]
    assert len(chunks) == 1
    expected = embedder.embed_texts([chunks[0].chunk.text])[0]
    assert float(np.dot(expected, chunks[0].vector)) > 0.9999


def test_overlong_sentence_is_cut_to_fit(embedder):
    doc = _doc([Block("word " * 900, ())])
    chunks = SemanticChunker(embedder, max_tokens=100).chunk_documents([doc])[0]
    assert len(chunks) >= 9
    assert all(p.token_count <= 100 for p in chunks)


def test_questions_embedded_by_onnx_runtime_land_where_torch_puts_them(embedder):
    questions = ["How long is parental leave?", "Wer hat 1999 den Preis gewonnen? ✓", "x" * 3000]
    by_torch = embedder.embed_texts(questions)
    by_onnx = np.stack([embedder.embed_query(q) for q in questions])
    assert embedder._onnx_query_encoder() is not None, "the ONNX query encoder did not build"
    assert by_onnx.dtype == np.float32
    np.testing.assert_allclose(by_onnx, by_torch, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(by_onnx, axis=1), 1.0, atol=1e-5)
