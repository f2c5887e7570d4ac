"""rag.retrieval.hybrid on its own: a real embedded store and the real embedding model."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from factories import chunk_payload

from rag.retrieval.bm25 import BM25Encoder, tokenize
from rag.retrieval.hybrid import HybridRetriever
from rag.retrieval.store import open_store
from rag.types import ChunkPoint

pytestmark = pytest.mark.integration

TEXTS = {
    "verified": {
        "leave.md": "Parental leave is sixteen weeks at full pay for every parent.",
        "vpn.md": "The VPN disconnects after eight hours; reconnect from the tray icon.",
    },
    "community": {
        "leave-forum.md": "Someone said parental leave was twelve weeks, not sure.",
    },
}


@pytest.fixture
def retriever(tmp_path, embedder):
    store = open_store("edge", list(TEXTS), embedder.dim, edge_dir=tmp_path / "store")
    bm25 = BM25Encoder()
    for tier, docs in TEXTS.items():
        payloads = [chunk_payload(doc, text, tier=tier) for doc, text in docs.items()]
        if tier == "verified":  # one chunk past its TTL, with the words of the question
            payloads.append(
                chunk_payload(
                    "old-leave.md",
                    "Parental leave was ten weeks under the old policy.",
                    tier=tier,
                    expires_in=timedelta(seconds=-1),
                )
            )
        avgdl = float(np.mean([bm25.document_length(p.text) for p in payloads]))
        dense = embedder.embed_texts([p.text for p in payloads])
        store.upsert(
            tier,
            [
                ChunkPoint(p, vector.tolist(), bm25.encode_document(p.text, avgdl))
                for p, vector in zip(payloads, dense)
            ],
        )
    yield HybridRetriever(store, embedder, bm25, tier_weights={"community": 0.5})
    store.close()


QUESTION = "How many weeks of parental leave do parents get?"


def test_candidates_come_from_every_tier_weighted_by_trust_and_never_expired(retriever):
    found = retriever.retrieve(QUESTION, ["verified", "community"], limit=5)
    docs = [c.payload.doc_id for c in found]
    assert docs[0] == "leave.md" and "leave-forum.md" in docs
    assert "old-leave.md" not in docs  # expired: filtered in the engine
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    for c in found:
        assert c.trust == (0.5 if c.tier == "community" else 1.0)
        assert c.score == pytest.approx(c.fused * c.trust)


def test_each_candidate_carries_its_exact_dense_and_bm25_scores(retriever, embedder):
    found = retriever.retrieve(QUESTION, ["verified"], limit=5)
    by_doc = {c.payload.doc_id: c for c in found}
    leave, vpn = by_doc["leave.md"], by_doc["vpn.md"]
    question = embedder.embed_query(QUESTION)
    expected = float(np.dot(question, embedder.embed_texts([leave.payload.text])[0]))
    assert leave.dense == pytest.approx(expected, abs=1e-3)
    assert leave.bm25 > 0 and vpn.bm25 == 0.0  # no word of the question is in the VPN chunk
    assert leave.dense > vpn.dense


def test_tiers_outside_the_request_are_not_searched(retriever):
    found = retriever.retrieve(QUESTION, ["community"], limit=5)
    assert {c.tier for c in found} == {"community"}


def test_unmentioned_lists_the_terms_no_live_chunk_of_the_tiers_contains(retriever):
    # Terms as the index spells them (stemmed); "policy" is only in the expired chunk,
    # "twelve" only in the community tier.
    parental, policy, twelve = tokenize("parental policy twelve")
    assert retriever.unmentioned([parental, policy, twelve], ["verified"]) == [policy, twelve]
    assert retriever.unmentioned([twelve], ["verified", "community"]) == []
