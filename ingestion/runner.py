"""An ingestion job: load -> chunk by meaning -> tag -> embed -> write, incrementally.

Per document the order is: new chunks written, then the document's other chunks removed, then
its state recorded. A reader never sees the document missing, and a job that dies half-way
leaves every document either at its old or its new version; the next run converges.

    ingestor = Ingestor(store, catalog, jobs, lambda: SemanticChunker(embedder))
    job = ingestor.run(IngestRequest("handbook", "internal", Path("docs"), "90d"))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ingestion.chunking import EmbeddedChunk, SemanticChunker
from ingestion.git import GitError, GitReader, GitRepo, is_git_location
from ingestion.loaders import (
    LoadError,
    LoadLimits,
    check_location,
    discover,
    load_file,
    printable_name,
    read_jsonl,
)
from ingestion.web import FetchPolicy, WebReader, WebSite, is_web_location
from rag.answering.injection import injection_reason
from rag.durations import parse_duration
from rag.ops.catalog import Catalog, DocumentState
from rag.ops.jobs import NOT_READ, FileResult, JobLog, JobRecord
from rag.retrieval.bm25 import BM25Encoder
from rag.retrieval.store import ChunkFilter, VectorStore
from rag.types import (
    ChunkPayload,
    ChunkPoint,
    LoadedDocument,
    chunk_id_for,
    content_hash,
    iso,
    utc_now,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

# Documents are chunked and embedded together until about this much text is pending: batches
# keep the model busy without holding a large corpus's token vectors in memory.
BATCH_CHARS = 200_000
BATCH_DOCS = 64


@dataclass(frozen=True)
class IngestRequest:
    """What to ingest: a folder, a `.jsonl` corpus, a git repository (`GitRepo`) or a web
    site (`WebSite`)."""

    source: str
    tier: str
    path: Path | GitRepo | WebSite
    ttl: str
    trigger: str = "cli"

    @property
    def location(self) -> str:
        """The source's location as jobs and the catalog record it (`source_location` reads
        it back)."""
        if isinstance(self.path, GitRepo | WebSite):
            return self.path.location
        return str(self.path.resolve())


def default_source_name(path: Path | GitRepo | WebSite) -> str:
    """A source's name when none is given: the folder's, the corpus file's stem, the
    repository's or the site's host."""
    if isinstance(path, GitRepo | WebSite):
        return path.name
    return path.stem if path.is_file() else path.resolve().name


def source_location(location: str) -> Path | GitRepo | WebSite:
    """A recorded location (`IngestRequest.location`) as a request's `path` again."""
    if is_git_location(location):
        return GitRepo.parse(location)
    if is_web_location(location):
        return WebSite.parse(location)
    return Path(location)


@dataclass(frozen=True)
class _Run:
    """One ingestion run's context, handed to each of its steps: what was asked, its job, the
    catalog's documents of the source as the run found them, and the run's timestamps (every
    chunk written or re-verified expires at `expires_at`)."""

    request: IngestRequest
    job: JobRecord
    known: dict[str, DocumentState]
    now: datetime
    expires_at: datetime


@dataclass
class _Item:
    """One unit of a source: a loaded document, or the reason it failed."""

    name: str  # file path relative to the source, or "line N" of a JSONL corpus
    doc: LoadedDocument | None = None
    error: str | None = None
    doc_id: str | None = None
    # Known not to have changed since the last run (a git file outside the diff): not read.
    unchanged: str | None = None


class Ingestor:
    def __init__(
        self,
        store: VectorStore,
        catalog: Catalog,
        jobs: JobLog,
        chunker: Callable[[], SemanticChunker],
        bm25: BM25Encoder | None = None,
        limits: LoadLimits | None = None,
        git_dir: Path | None = None,
        fetch: FetchPolicy | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.jobs = jobs
        # Built on first use: a re-run where nothing changed never loads the embedding model.
        self._make_chunker = chunker
        self._chunker: SemanticChunker | None = None
        self.bm25 = bm25 or BM25Encoder()
        self.limits = limits or LoadLimits()
        # Bare clones of git sources (the data dir's `git/`); None: git sources are refused.
        self.git = GitReader(git_dir, self.limits) if git_dir is not None else None
        # How web sources are fetched (timeouts, politeness, private networks); None: refused.
        self.fetch = fetch

    def validate(self, request: IngestRequest) -> None:
        """Bad arguments raise ValueError before any job exists (CLI exit 2, HTTP 422)."""
        if request.tier not in self.store.tiers:
            raise ValueError(
                f"unknown tier {request.tier!r}; allowed tiers: {', '.join(self.store.tiers)}"
            )
        parse_duration(request.ttl)
        if not request.source.strip():
            raise ValueError("source name must not be empty")
        if isinstance(request.path, GitRepo):
            if self.git is None:
                raise ValueError("git sources are not enabled here")
        elif isinstance(request.path, WebSite):
            if self.fetch is None:
                raise ValueError("web sources are not enabled here")
        elif not request.path.exists():
            raise ValueError(f"path {str(request.path)!r} does not exist")
        elif request.path.is_file() and request.path.suffix.lower() != ".jsonl":
            raise ValueError(f"path {str(request.path)!r} must be a folder or a .jsonl corpus")
        for src in self.catalog.sources():
            if src.name == request.source and src.tier != request.tier:
                raise ValueError(
                    f"source {request.source!r} is indexed in tier {src.tier!r}; "
                    "a source keeps its tier (use a new source name for another tier)"
                )

    def submit(self, request: IngestRequest, queued: bool = True) -> JobRecord:
        """Validate and record a job: queued for a worker, or running here (`run` without a
        job); `run(request, job)` executes it."""
        self.validate(request)
        return self.jobs.create(
            request.source,
            request.tier,
            request.location,
            request.ttl,
            request.trigger,
            queued=queued,
        )

    def run(
        self,
        request: IngestRequest,
        job: JobRecord | None = None,
        progress: Progress | None = None,
    ) -> JobRecord:
        job = job or self.submit(request, queued=False)
        try:
            cursor = self._run(request, job, progress)
        except Exception as exc:
            log.exception("ingestion job %s failed", job.job_id)
            reason = f"{type(exc).__name__}: {exc}"
            self.jobs.finish(job, "failed", reason)
            self.catalog.record_run(request.source, job.job_id, utc_now(), error=reason)
            return job
        self.jobs.finish(job, "succeeded")
        # The next run starts from here only when every file of this one was read: a file
        # that failed is then read again, as a folder source re-reads everything.
        if job.counts["failed"]:
            cursor = None
        self.catalog.record_run(
            request.source, job.job_id, job.finished_at or utc_now(), cursor=cursor
        )
        return job

    # --------------------------------------------------------------------------------------
    def _run(self, request: IngestRequest, job: JobRecord, progress: Progress | None) -> str | None:
        """Returns where the next run may start from (a git source's commit), else None."""
        last = self.catalog.source(request.source)
        self.catalog.register_source(request.source, request.tier, request.location, request.ttl)
        now = utc_now()
        run = _Run(
            request,
            job,
            self.catalog.documents(request.source),
            now,
            now + parse_duration(request.ttl),
        )
        known = run.known
        cursor: str | None = None
        if isinstance(request.path, GitRepo):
            cursor, items, total = self._git_items(
                request.source, request.path, set(known), last.cursor if last else None
            )
        elif isinstance(request.path, WebSite):
            items, total = self._web_items(request.path, known)
        else:
            items, total = self._items(request.path)
        self.jobs.start(job, total)
        first_seen: dict[str, str] = {}  # doc id -> where it first appeared in this run
        unchanged: list[str] = []
        pending: list[LoadedDocument] = []
        done = 0

        def flush() -> None:
            self._write(run, pending)
            pending.clear()

        for item in items:
            done += 1
            if progress:
                progress(done, total, item.name)
            if item.doc_id and item.doc_id in first_seen:
                reason = (
                    f"duplicate document id {item.doc_id!r} (first at {first_seen[item.doc_id]})"
                )
                self.jobs.record_file(job, FileResult(item.name, "failed", reason))
                continue
            if item.doc_id:
                # A document that fails to load keeps its last good version in the index.
                first_seen[item.doc_id] = item.name
            if item.unchanged and item.doc_id:
                unchanged.append(item.doc_id)
                self.jobs.record_file(job, FileResult(item.name, "unchanged", item.unchanged))
                continue
            if item.doc is None:
                self.jobs.record_file(job, FileResult(item.name, "failed", item.error))
                continue
            doc = item.doc
            previous = known.get(doc.doc_id)
            if previous is not None and previous.content_hash == doc.content_hash:
                fetched = doc.metadata.get("fetch_state")
                if fetched and fetched != previous.fetch_state:  # same page, new validators
                    self.catalog.set_fetch_state(request.source, doc.doc_id, fetched)
                unchanged.append(doc.doc_id)
                self.jobs.record_file(job, FileResult(item.name, "unchanged", _notes(doc)))
                continue
            pending.append(doc)
            if len(pending) >= BATCH_DOCS or sum(len(d.text) for d in pending) >= BATCH_CHARS:
                flush()
        flush()
        self._reverify(run, unchanged)
        removed = self._delete_missing(run, set(first_seen))
        if removed or job.counts["updated"]:
            # Deleted points still count in the engine's IDF until segments are optimised.
            self.store.optimize(request.tier)
        return cursor

    def _git_items(
        self, source: str, repo: GitRepo, known: set[str], last: str | None
    ) -> tuple[str, Iterator[_Item], int]:
        """The files of the ref's commit: those changed since `last` read, the rest not."""
        assert self.git is not None  # validate() refused git sources without a reader
        git = self.git
        commit, files = git.files(source, repo, known, last)

        def load_all() -> Iterator[_Item]:
            for file in files:
                if file.unchanged:
                    note = f"{NOT_READ}not changed since commit {last[:12] if last else ''}"
                    yield _Item(file.doc_id, doc_id=file.doc_id, unchanged=note)
                    continue
                try:
                    doc = git.load(source, repo, commit, file)
                    yield _Item(file.doc_id, doc, doc_id=file.doc_id)
                except (LoadError, GitError) as exc:
                    yield _Item(file.doc_id, error=str(exc), doc_id=file.doc_id)

        return commit, load_all(), len(files)

    def _web_items(
        self, site: WebSite, known: dict[str, DocumentState]
    ) -> tuple[Iterator[_Item], int]:
        """The site's pages this run reaches; a page not modified (304) is not downloaded."""
        assert self.fetch is not None  # validate() refused web sources without a policy
        reader = WebReader(self.fetch.for_site(site), self.limits)
        pages = reader.pages(site, {d: k.fetch_state or {} for d, k in known.items()})
        items = (
            _Item(p.doc_id, doc_id=p.doc_id, unchanged=f"{NOT_READ}not modified (304)")
            if p.not_modified
            else _Item(p.doc_id, p.doc, p.error, doc_id=p.doc_id)
            for p in pages
        )
        return items, len(pages)

    def _items(self, path: Path) -> tuple[Iterator[_Item], int]:
        if path.is_file():
            total = sum(1 for line in path.open("rb") if line.strip())
            rows = read_jsonl(path, self.limits.max_bytes)
            return (
                (_Item(f"line {r.line}", r.doc, r.error, r.doc_id) for r in rows),
                total,
            )
        files = discover(path)

        def load_all() -> Iterator[_Item]:
            for file in files:
                doc_id = printable_name(file.relative_to(path).as_posix())
                try:
                    check_location(file, path)
                    yield _Item(doc_id, load_file(file, doc_id, self.limits), doc_id=doc_id)
                except LoadError as exc:
                    yield _Item(doc_id, error=str(exc), doc_id=doc_id)
                except OSError as exc:
                    yield _Item(
                        doc_id, error=f"cannot read file: {exc.strerror or exc}", doc_id=doc_id
                    )

        return load_all(), len(files)

    def _write(self, run: _Run, docs: list[LoadedDocument]) -> None:
        request, known = run.request, run.known
        if not docs:
            return
        if self._chunker is None:
            self._chunker = self._make_chunker()
        embedded = self._chunker.chunk_documents(docs)
        lengths = [[self.bm25.document_length(c.chunk.text) for c in chunks] for chunks in embedded]
        # This batch's documents see an avgdl that includes them; the totals themselves change
        # only with each document's saved state (one transaction), so a killed run never
        # leaves them counting a document that was not recorded.
        old_chunks = sum(len(known[d.doc_id].chunk_ids) for d in docs if d.doc_id in known)
        old_tokens = sum(known[d.doc_id].token_total for d in docs if d.doc_id in known)
        avgdl = self.catalog.avgdl(
            request.tier,
            sum(len(x) for x in lengths) - old_chunks,
            sum(sum(x) for x in lengths) - old_tokens,
        )
        for doc, chunks, lens in zip(docs, embedded, lengths):
            previous = known.get(doc.doc_id)
            version = previous.version + 1 if previous else 1
            points = [self._point(run, doc, c, version, avgdl) for c in chunks]
            new_ids = [p.id for p in points]
            self.store.upsert(request.tier, points)
            self.store.delete(
                request.tier,
                ChunkFilter(source=request.source, doc_ids=[doc.doc_id], exclude_chunk_ids=new_ids),
            )
            state = DocumentState(
                source=request.source,
                doc_id=doc.doc_id,
                tier=request.tier,
                uri=doc.uri,
                content_hash=doc.content_hash,
                version=version,
                chunk_ids=new_ids,
                token_total=sum(lens),
                source_modified_at=doc.modified_at,
                ingested_at=run.now,
                verified_at=run.now,
                expires_at=run.expires_at,
                fetch_state=doc.metadata.get("fetch_state"),
            )
            self.catalog.save_document(state, previous)
            status = "updated" if previous else "added"
            self.jobs.record_file(
                run.job, FileResult(doc.doc_id, status, _notes(doc), chunks=len(points))
            )

    def _point(
        self, run: _Run, doc: LoadedDocument, piece: EmbeddedChunk, version: int, avgdl: float
    ) -> ChunkPoint:
        request, chunk = run.request, piece.chunk
        chunk_hash = content_hash(chunk.text)
        section = doc.section_at(chunk.char_start)
        ocr = section.ocr_confidence if section else None
        floor = self.limits.ocr_min_confidence
        payload = ChunkPayload(
            doc_id=doc.doc_id,
            chunk_id=chunk_id_for(request.source, doc.doc_id, chunk.index, chunk_hash),
            chunk_index=chunk.index,
            source=request.source,
            tier=request.tier,
            uri=doc.uri,
            title=doc.title,
            section=chunk.section,
            text=chunk.text,
            char_start=chunk.char_start,
            char_end=chunk.char_end,
            source_modified_at=iso(doc.modified_at),
            ingested_at=iso(run.now),
            expires_at=iso(run.expires_at),
            content_hash=chunk_hash,
            doc_hash=doc.content_hash,
            version=version,
            token_count=piece.token_count,
            injection=injection_reason(chunk.text),
            ocr_confidence=ocr,
            ocr_flag=f"OCR confidence {ocr:.2f} on {chunk.section or 'its page'}, below {floor:.2f}"
            if ocr is not None and ocr < floor
            else None,
        )
        return ChunkPoint(
            payload=payload,
            dense=piece.vector.tolist(),
            sparse=self.bm25.encode_document(chunk.text, avgdl),
        )

    def _reverify(self, run: _Run, doc_ids: list[str]) -> None:
        """Unchanged documents were just re-read from their source: their TTL starts again."""
        request, now, expires_at = run.request, run.now, run.expires_at
        for start in range(0, len(doc_ids), 500):
            batch = doc_ids[start : start + 500]
            self.store.set_payload(
                request.tier,
                ChunkFilter(source=request.source, doc_ids=batch),
                {"expires_at": iso(expires_at)},
            )
            self.catalog.touch_documents(request.source, batch, now, expires_at)

    def _delete_missing(self, run: _Run, seen: set[str]) -> int:
        request, job, known = run.request, run.job, run.known
        gone = [doc_id for doc_id in known if doc_id not in seen]
        for doc_id in gone:
            state = known[doc_id]
            self.store.delete(state.tier, ChunkFilter(source=request.source, doc_ids=[doc_id]))
            self.catalog.delete_document(state)
            self.jobs.record_file(job, FileResult(doc_id, "deleted"))
        return len(gone)


def _notes(doc: LoadedDocument) -> str | None:
    """The loader's notes (what it skipped or doubts) as a file result's reason."""
    return "; ".join(doc.notes) or None
