"""Retrieval: the question's way to candidate chunks. The Qdrant store (one collection per trust
tier, embedded or server), the dense embedder, BM25 terms, hybrid retrieval fused in the engine,
and reranking."""
