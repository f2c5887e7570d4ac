"""ragops as a LlamaIndex retriever: `RagopsRetriever` asks a running ragops for chunks over
HTTP (`POST /search`, with an API key) and hands them to LlamaIndex as `NodeWithScore`s.

    retriever = RagopsRetriever("http://127.0.0.1:8000", api_key="rk_...", top_k=5)
    for hit in retriever.retrieve("When is the deploy window?"):
        print(hit.score, hit.node.metadata["citation"])

Each node is one ragops chunk: node id = chunk id, score = the service's final score
(reranked, trust weighted), text = the chunk text, and metadata that says where it comes from
and how fresh it is (`METADATA_KEYS`), including a ready `citation` string. The service
decides what a key may read: a chunk from a tier outside the key's scope never comes back.
Failures the service reports (401, 403, 422, 429, 503, ...) raise a `RagopsError` subclass
carrying the service's own message; so do connection failures and timeouts.

This module is the only place in ragops that imports LlamaIndex (the `llamaindex` extra).
Offline: importing it and retrieving touch neither NLTK data nor tiktoken encodings; a
LlamaIndex query engine over it counts tokens with the cl100k encoding that llama-index-core
ships and loads from its own folder unless `TIKTOKEN_CACHE_DIR` points elsewhere.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from rag import integrations

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import (
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        RelatedNodeInfo,
        TextNode,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rag.integrations.llamaindex needs llama-index-core: "
        'pip install "ragops[llamaindex]" (or llama-index-core)'
    ) from exc

# The names the package offers lazily, and this module's own helpers.
__all__ = [*integrations.__all__, "METADATA_KEYS", "citation", "node_from_hit"]

# Every node carries all of these keys (None where the service did not send the value).
METADATA_KEYS = (
    "tier",
    "source",
    "doc_id",
    "chunk_id",
    "uri",
    "title",
    "section",
    "source_modified_at",
    "ingested_at",
    "expires_at",
    "age_days",
    "citation",
    # The evidence behind the score, as /search reports it.
    "dense",
    "bm25",
    "judge",
)
# What an LLM sees of the metadata when LlamaIndex puts a node into a prompt: the citation,
# which already names the tier, source, document and age. Embedding sees none of it.
LLM_METADATA_KEYS = ("citation",)

USER_AGENT = "ragops-llamaindex/0.1"


class RagopsError(Exception):
    """ragops refused or failed a search. `message` is the service's own explanation;
    `status_code` is None when no HTTP answer came (connection failure, timeout)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        reason: str | None = None,
        url: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.reason = reason  # the service's machine-readable reason (503s), when it sent one
        self.url = url
        where = f"ragops {url}" if url else "ragops"
        head = f"{where} answered {status_code}" if status_code is not None else where
        super().__init__(f"{head}: {message}")


class RagopsAuthError(RagopsError):
    """401 (no key, or an unknown or revoked key) or 403 (a tier outside the key's scope)."""


class RagopsRequestError(RagopsError):
    """The request was refused as invalid (422: blank question, unknown tier, top_k out of
    range; other 4xx)."""


class RagopsRateLimitedError(RagopsError):
    """429: the key is over its rate; `retry_after` is the service's wait in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RagopsUnavailableError(RagopsError):
    """503 and other 5xx (e.g. the vector store is unavailable), or ragops could not be
    reached at all (connection refused, timeout)."""


class RagopsRetriever(BaseRetriever):
    """A LlamaIndex retriever over a running ragops service (`POST /search`).

    `base_url` is the service root (a path prefix behind a proxy is kept); `api_key` goes in
    `Authorization: Bearer` (None only for a service with no keys, which serves loopback
    clients alone); `top_k` chunks come back per query (the service allows 1..50); `tiers`
    narrows the search to some of the key's tiers (a tier outside them is a 403). Pass your own
    `http_client` / `async_http_client` to reuse connections or configure proxies and TLS;
    the retriever never closes clients it did not create.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        top_k: int = 5,
        tiers: list[str] | None = None,
        timeout: float | httpx.Timeout = 30.0,
        headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, not {top_k!r}")
        if tiers is not None and (isinstance(tiers, str) or not all(tiers)):
            raise ValueError("tiers must be a list of tier names, e.g. ['verified']")
        self.base_url = base_url.rstrip("/")
        self.top_k = top_k
        self.tiers = list(tiers) if tiers is not None else None
        self.timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client = http_client
        self._owns_client = http_client is None
        self._async_client = async_http_client
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def search_url(self) -> str:
        return f"{self.base_url}/search"

    def close(self) -> None:
        """Close the HTTP client this retriever created (a no-op for one passed in)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RagopsRetriever:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _body(self, query: str) -> dict[str, Any]:
        body: dict[str, Any] = {"question": query, "top_k": self.top_k}
        if self.tiers is not None:
            body["tiers"] = self.tiers
        return body

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        try:
            response = self._client.post(
                self.search_url, json=self._body(query_bundle.query_str), headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return self._nodes(response)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        body = self._body(query_bundle.query_str)
        try:
            if self._async_client is not None:
                response = await self._async_client.post(
                    self.search_url, json=body, headers=self._headers
                )
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.post(self.search_url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return self._nodes(response)

    def _transport_error(self, exc: httpx.HTTPError) -> RagopsError:
        if isinstance(exc, httpx.TimeoutException):
            return RagopsUnavailableError(
                f"no answer within the timeout ({type(exc).__name__})", url=self.search_url
            )
        if isinstance(exc, httpx.TransportError):
            return RagopsUnavailableError(
                f"could not reach the service: {exc or type(exc).__name__}", url=self.search_url
            )
        return RagopsError(f"the request failed: {exc or type(exc).__name__}", url=self.search_url)

    def _nodes(self, response: httpx.Response) -> list[NodeWithScore]:
        if response.status_code != 200:
            raise _service_error(response, self.search_url)
        try:
            results = response.json()["results"]
            if not isinstance(results, list):
                raise TypeError("results is not a list")
            now = datetime.now(UTC)
            return [node_from_hit(hit, now) for hit in results]
        except (ValueError, KeyError, TypeError) as exc:
            raise RagopsError(
                f"unexpected /search response ({exc}); is {self.base_url} a ragops service?",
                status_code=response.status_code,
                url=self.search_url,
            ) from exc


def node_from_hit(hit: dict[str, Any], now: datetime | None = None) -> NodeWithScore:
    """One `/search` hit as a LlamaIndex node (see `METADATA_KEYS`)."""
    chunk_id = str(hit["chunk_id"])
    doc_id = str(hit["doc_id"])
    modified = hit.get("source_modified_at")
    age = hit.get("age_days")
    if age is None and modified:
        age = _age_days(modified, now or datetime.now(UTC))
    metadata: dict[str, Any] = {key: hit.get(key) for key in METADATA_KEYS}
    metadata.update(chunk_id=chunk_id, doc_id=doc_id, age_days=age)
    metadata["citation"] = citation(metadata)
    node = TextNode(
        id_=chunk_id,
        text=str(hit["text"]),
        metadata=metadata,
        excluded_llm_metadata_keys=[k for k in METADATA_KEYS if k not in LLM_METADATA_KEYS],
        excluded_embed_metadata_keys=list(METADATA_KEYS),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)},
        start_char_idx=hit.get("char_start"),
        end_char_idx=hit.get("char_end"),
    )
    return NodeWithScore(node=node, score=float(hit["score"]))


def citation(meta: dict[str, Any]) -> str:
    """`Title > Section — doc id (tier T, source S, modified DATE, N days old) <uri>`; the
    parts the service did not send are left out. (ragops' `section` is the heading path, which
    usually starts with the title already.)"""
    title, section = meta.get("title"), meta.get("section")
    if title and section and not section.startswith(title):
        label = f"{title} > {section}"
    else:
        label = section or title or meta["doc_id"]
    facts = [f"tier {meta.get('tier')}", f"source {meta.get('source')}"]
    if meta.get("source_modified_at"):
        facts.append(f"modified {str(meta['source_modified_at'])[:10]}")
    if meta.get("age_days") is not None:
        facts.append(f"{meta['age_days']} days old")
    text = f"{label} — {meta['doc_id']} ({', '.join(facts)})"
    return f"{text} <{meta['uri']}>" if meta.get("uri") else text


def _age_days(modified: str, now: datetime) -> float | None:
    """Days since the source changed, as the service computes a citation's `age_days`."""
    try:
        then = datetime.fromisoformat(modified)
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return round((now - then).total_seconds() / 86400, 1)


def _service_error(response: httpx.Response, url: str) -> RagopsError:
    message, reason = _service_message(response)
    code = response.status_code
    kwargs: dict[str, Any] = {"status_code": code, "reason": reason, "url": url}
    if code in (401, 403):
        return RagopsAuthError(message, **kwargs)
    if code == 429:
        return RagopsRateLimitedError(
            message, retry_after=_retry_after(response.headers.get("retry-after")), **kwargs
        )
    if code >= 500:
        return RagopsUnavailableError(message, **kwargs)
    if 400 <= code < 500:
        return RagopsRequestError(message, **kwargs)
    return RagopsError(message, **kwargs)


def _service_message(response: httpx.Response) -> tuple[str, str | None]:
    """The service's `detail` (FastAPI's error shape; a 422 lists each field's problem)."""
    fallback = response.text.strip()[:500] or response.reason_phrase or "no message"
    try:
        body = response.json()
    except ValueError:
        return fallback, None
    if not isinstance(body, dict):
        return fallback, None
    reason = body.get("reason") if isinstance(body.get("reason"), str) else None
    detail = body.get("detail")
    if isinstance(detail, str) and detail:
        return detail, reason
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                msg = str(item.get("msg", item))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts), reason
    return fallback, reason


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None
