"""Client-side integrations: ragops used from other frameworks over its HTTP API.

Each integration imports its framework only when it is used, so ragops itself never needs
them: `from rag.integrations import RagopsRetriever` (or importing
`rag.integrations.llamaindex`) is what loads LlamaIndex, and needs the `llamaindex` extra
(`pip install "ragops[llamaindex]"`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.integrations.llamaindex import (
        RagopsAuthError,
        RagopsError,
        RagopsRateLimitedError,
        RagopsRequestError,
        RagopsRetriever,
        RagopsUnavailableError,
    )

__all__ = [
    "RagopsAuthError",
    "RagopsError",
    "RagopsRateLimitedError",
    "RagopsRequestError",
    "RagopsRetriever",
    "RagopsUnavailableError",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rag.integrations import llamaindex

        return getattr(llamaindex, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
