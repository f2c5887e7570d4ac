"""Web sites as sources: a docs site or wiki crawled over HTTP, kept fresh by the server's own
signals.

    ragops ingest https://docs.example.com/handbook/ --source docs --tier internal
    ragops ingest https://docs.example.com/sitemap.xml --max-pages 500

A crawl starts from a page or a sitemap (`sitemap.xml`, sitemap indexes) and follows links
within the start URL's host and path prefix, up to `max_pages` pages and `max_depth` links from
the start. It obeys `robots.txt` (its rules and crawl-delay for our User-Agent), waits between
requests to the host, and sends a User-Agent that says who it is. Pages go through the same
loaders as files (HTML by its content type; PDFs and other linked documents by theirs); a
document's id is its URL (after redirects, or its `<link rel=canonical>` within the site), so
redirects and canonical URLs never make two documents of one page.

Re-runs are conditional (`If-None-Match`, `If-Modified-Since` from the last run's `ETag` and
`Last-Modified`): a 304 is "unchanged" without a download, and the page's links are remembered
from the run that read it. `Last-Modified` becomes `source_modified_at`. A page that is now
404 or 410 leaves the index; one that fails (timeout, 5xx, TLS error, redirect loop or a
redirect out of the site, oversized, a content type no loader reads) is a per-document failure
with its reason, and its last good version stays searchable.

Fetching is bounded by `FetchPolicy`: every URL (each redirect too) must be under an allowed
prefix, and the address actually connected to is checked (`GuardedBackend`), so a host name
that resolves to a private, loopback or link-local address is refused unless an allowed prefix
names that address itself, and DNS that changes between a check and the fetch cannot get
past it.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpcore
import httpx

from ingestion.loaders import LoadError, LoadLimits, load_file
from rag.ops.catalog import source_kind
from rag.types import LoadedDocument

USER_AGENT = "ragops-crawler/0.1 (a retrieval index of this site; robots.txt: ragops-crawler)"
ROBOTS_AGENT = "ragops-crawler"
MAX_REDIRECTS = 5
MAX_SITEMAP_BYTES = 10 * 1024 * 1024
MAX_URL_CHARS = 1000  # a document id is at most this long (the ops database's column)
# Content types the loaders read, by the file extension that routes them.
CONTENT_TYPES = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "image/png": ".png",
    "image/jpeg": ".jpg",
}
SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def is_web_location(location: str) -> bool:
    return source_kind(location) == "web"


def normalise(url: str) -> str:
    """One spelling per page: no fragment, lower-case scheme and host, no default port."""
    url, _ = urldefrag(url)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    netloc = f"[{host}]{port}" if ":" in host else f"{host}{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


@dataclass(frozen=True)
class WebSite:
    """A web source: the start page or sitemap, and how far a crawl may go."""

    url: str
    max_pages: int = 200
    max_depth: int = 3

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a web source is an http:// or https:// URL, not {self.url!r}")
        if parts.username or parts.password:
            raise ValueError("a web source's URL must not carry credentials")
        if not 1 <= self.max_pages <= 100_000 or not 0 <= self.max_depth <= 50:
            raise ValueError("max_pages must be 1..100000 and max_depth 0..50")

    @property
    def start(self) -> str:
        return normalise(self.url)

    @property
    def scope(self) -> str:
        """Pages under this prefix belong to the site: the start URL's host and folder."""
        start = self.start
        return start[: start.rfind("/") + 1]

    @property
    def is_sitemap(self) -> bool:
        return urlsplit(self.url).path.endswith(".xml")

    @property
    def name(self) -> str:
        return urlsplit(self.url).hostname or "site"

    @property
    def location(self) -> str:
        spec = urlencode({"max_pages": self.max_pages, "max_depth": self.max_depth})
        return f"{self.url}#{spec}"

    @classmethod
    def parse(cls, location: str) -> WebSite:
        url, _, spec = location.partition("#")
        given = {k: int(v) for k, v in parse_qsl(spec) if v.isdigit()}
        return cls(url, given.get("max_pages", 200), given.get("max_depth", 3))


class WebError(Exception):
    """The site as a whole could not be crawled (robots.txt or the sitemap unavailable): the
    job fails with this reason and every page keeps its last version."""


class FetchRefused(Exception):
    """A URL or an address the policy does not allow: a per-document failure, never fetched."""


@dataclass(frozen=True)
class FetchPolicy:
    """Where a crawl may go: URLs under `prefixes`; addresses that are public, or named
    literally by a prefix's host (a loopback test site), or inside `private_networks`."""

    prefixes: tuple[str, ...]
    private_networks: tuple[str, ...] = ()
    timeout_s: float = 20.0
    delay_s: float = 0.5

    def for_site(self, site: WebSite) -> FetchPolicy:
        """This policy for one crawl: the site's own pages and its host's robots.txt."""
        parts = urlsplit(site.start)
        robots = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
        return replace(self, prefixes=(site.scope, robots))

    def check_url(self, url: str) -> None:
        if not is_web_location(url):
            raise FetchRefused(f"{url!r} is not an http(s) URL")
        if not any(normalise(url).startswith(normalise(p)) for p in self.prefixes):
            raise FetchRefused(f"{url} is outside the allowed URL prefixes (RAG_INGEST_ROOTS)")

    def check_address(self, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_global and not ip.is_multicast:
            return
        named = set()
        for prefix in self.prefixes:
            host = urlsplit(prefix).hostname or ""
            try:
                named.add(ipaddress.ip_address(host))
            except ValueError:
                continue
        if ip in named or any(ip in ipaddress.ip_network(n) for n in self.private_networks):
            return
        raise FetchRefused(
            f"address {ip} is private, loopback or link-local; allow it by naming it in "
            "RAG_INGEST_ROOTS or RAG_FETCH_PRIVATE_NETWORKS"
        )


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy allows, checking the address it connects to
    (not one looked up earlier), so DNS rebinding between check and fetch gets nowhere."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        address = str(infos[0][4][0])
        self.policy.check_address(address)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


def guarded_client(policy: FetchPolicy) -> httpx.Client:
    transport = httpx.HTTPTransport(retries=0)
    # httpx builds its pool without a way to pass a network backend: put ours in its place.
    transport._pool = httpcore.ConnectionPool(network_backend=GuardedBackend(policy))
    return httpx.Client(
        transport=transport,
        follow_redirects=False,
        timeout=policy.timeout_s,
        headers={"User-Agent": USER_AGENT},
    )


@dataclass
class WebPage:
    """One page of a crawl: read (`doc`), failed (`error`), or not modified since last time."""

    doc_id: str
    doc: LoadedDocument | None = None
    error: str | None = None
    not_modified: bool = False
    # What the next run sends and remembers: ETag, Last-Modified, and the page's links.
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Fetched:
    url: str  # after redirects
    status: int
    headers: httpx.Headers
    body: bytes = b""


class WebReader:
    """Crawls one site per run (`pages`), politely and within its policy."""

    def __init__(self, policy: FetchPolicy, limits: LoadLimits, sleep: Any = time.sleep) -> None:
        self.policy = policy
        self.limits = limits
        self.sleep = sleep

    def pages(self, site: WebSite, known: dict[str, dict[str, Any]]) -> list[WebPage]:
        """Every page of the site this run reaches: `known` maps a document id (URL) to the
        state its last read left (the URL it was fetched as, validators, links)."""
        self.policy.check_url(site.url)
        # A page is asked for by the URL it was fetched as; a 304 keeps its document id.
        by_request = {
            state.get("fetched_as", doc_id): (doc_id, state) for doc_id, state in known.items()
        }
        out: dict[str, WebPage] = {}
        with guarded_client(self.policy) as client:
            robots = self._robots(client, site)
            delay = max(self.policy.delay_s, float(robots.crawl_delay(ROBOTS_AGENT) or 0))
            queue = deque((u, 0) for u in self._seeds(client, site))
            seen = {u for u, _ in queue}
            last_request = 0.0
            while queue and len(out) < site.max_pages:
                url, depth = queue.popleft()
                if not robots.can_fetch(ROBOTS_AGENT, url):
                    continue
                wait = last_request + delay - time.monotonic()
                if wait > 0:
                    self.sleep(wait)
                last_request = time.monotonic()
                page = self._page(client, site, url, by_request.get(url), set(out))
                if page is None or page.doc_id in out:  # gone (404/410), or a duplicate
                    continue
                out[page.doc_id] = page
                if depth < site.max_depth:
                    for link in page.state.get("links", []):
                        if link not in seen and link.startswith(site.scope):
                            seen.add(link)
                            queue.append((link, depth + 1))
        return list(out.values())

    def _robots(self, client: httpx.Client, site: WebSite) -> RobotFileParser:
        """The site's robots.txt. None there (4xx), or one that redirects out of the site:
        everything may be fetched. One the server fails to give (5xx, no connection) stops
        the run: as RFC 9309 says, the site may then not be crawled; and a crawl that reached
        nothing would delete the source's pages (the job fails instead, and they stay)."""
        parts = urlsplit(site.start)
        robots = RobotFileParser()
        url = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
        try:
            got = self._get(client, url)
        except FetchRefused:
            got = None
        except (httpx.HTTPError, LoadError) as exc:
            raise WebError(f"cannot read {url}: {exc or type(exc).__name__}") from exc
        if got is not None and got.status >= 500:
            raise WebError(f"{url} answered {got.status}: the site was not crawled")
        if got is not None and got.status == 200:
            robots.parse(got.body.decode("utf-8", "replace").splitlines())
        else:
            robots.parse([])
        return robots

    def _seeds(self, client: httpx.Client, site: WebSite) -> list[str]:
        if not site.is_sitemap:
            return [site.start]
        urls: list[str] = []
        pending, done = [site.start], set[str]()
        while pending and len(done) < 50:  # a sitemap index names sitemaps
            sitemap = pending.pop(0)
            done.add(sitemap)
            try:
                got = self._get(client, sitemap)
            except (httpx.HTTPError, LoadError, FetchRefused) as exc:
                raise WebError(f"cannot read the sitemap {sitemap}: {exc}") from exc
            if got.status != 200:
                raise WebError(f"the sitemap {sitemap} answered {got.status}")
            for kind, loc in _sitemap_entries(got.body):
                loc = normalise(urljoin(sitemap, loc))
                if kind == "sitemap" and loc not in done and loc.startswith(site.scope):
                    pending.append(loc)
                elif kind == "url" and loc.startswith(site.scope) and loc not in urls:
                    urls.append(loc)
        return urls

    def _get(
        self,
        client: httpx.Client,
        url: str,
        headers: dict[str, str] | None = None,
        have: set[str] | frozenset[str] = frozenset(),
    ) -> _Fetched:
        """GET with redirects followed by hand (each hop checked), the body capped; a redirect
        to a page this run already has stops there (status 0: nothing downloaded)."""
        hops: list[str] = []
        while True:
            if hops and url in have:
                return _Fetched(url, 0, httpx.Headers())
            self.policy.check_url(url)
            with client.stream("GET", url, headers=headers) as response:
                if response.has_redirect_location:
                    target = normalise(urljoin(url, response.headers.get("location", "")))
                    hops.append(url)
                    if target in hops or len(hops) > MAX_REDIRECTS:
                        raise FetchRefused(f"redirect loop or too many redirects from {hops[0]}")
                    url = target
                    continue
                body = b""
                if response.status_code == 200:
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.limits.max_bytes:
                            raise LoadError(
                                f"page is over the {self.limits.max_bytes}-byte limit "
                                "(RAG_MAX_FILE_BYTES)"
                            )
                        chunks.append(chunk)
                    body = b"".join(chunks)
                return _Fetched(url, response.status_code, response.headers, body)

    def _page(
        self,
        client: httpx.Client,
        site: WebSite,
        url: str,
        known: tuple[str, dict[str, Any]] | None,
        have: set[str],
    ) -> WebPage | None:
        doc_id, last = known or (url, {})
        conditional = {}
        if last.get("etag"):
            conditional["If-None-Match"] = last["etag"]
        if last.get("last_modified"):
            conditional["If-Modified-Since"] = last["last_modified"]
        try:
            got = self._get(client, url, conditional, have)
            if got.status == 304 and last:
                return WebPage(doc_id, not_modified=True, state=last)
            if got.status in (0, 404, 410):  # already read this run; gone
                return None
            if got.status != 200:
                raise LoadError(f"the server answered {got.status}")
            page_id = got.url
            if len(page_id) > MAX_URL_CHARS:
                raise LoadError(f"URL longer than {MAX_URL_CHARS} characters")
            doc, links, canonical = self._load(site, got)
            if canonical:
                page_id = doc.doc_id = canonical
            doc.uri = page_id
            state = {
                "fetched_as": url,
                "etag": got.headers.get("etag"),
                "last_modified": got.headers.get("last-modified"),
                "links": links,
            }
            doc.metadata["fetch_state"] = state
            return WebPage(page_id, doc, state=state)
        except FetchRefused as exc:
            return WebPage(doc_id, error=str(exc), state=last)
        except LoadError as exc:
            return WebPage(doc_id, error=str(exc), state=last)
        except httpx.TimeoutException:
            return WebPage(doc_id, error=f"timed out after {self.policy.timeout_s:g} s", state=last)
        except httpx.HTTPError as exc:
            return WebPage(doc_id, error=f"{type(exc).__name__}: {exc}", state=last)

    def _load(self, site: WebSite, got: _Fetched) -> tuple[LoadedDocument, list[str], str | None]:
        kind = got.headers.get("content-type", "").split(";")[0].strip().lower()
        ext = CONTENT_TYPES.get(kind)
        if ext is None:
            raise LoadError(f"content type {kind or '(none)'!r} is not read")
        links: list[str] = []
        canonical = None
        body = got.body
        if ext == ".html":
            links, canonical = _links(body, got.url, site.scope)
            body = main_content(body)
        with tempfile.TemporaryDirectory(prefix="ragops-web-") as tmp:
            file = Path(tmp) / f"page{ext}"
            file.write_bytes(body)
            doc = load_file(file, got.url, self.limits)
        doc.modified_at = _http_date(got.headers.get("last-modified")) or datetime.now(UTC)
        if doc.title == "page":  # a page without a heading: its URL's last part names it
            doc.title = urlsplit(got.url).path.rstrip("/").rsplit("/", 1)[-1] or got.url
        return doc, links, canonical


def _links(body: bytes, base: str, scope: str) -> tuple[list[str], str | None]:
    """The page's links within the site, and its canonical URL when that is within it too."""
    import lxml.html

    try:
        tree = lxml.html.document_fromstring(body)
    except (ValueError, lxml.etree.ParserError):
        return [], None
    tree.make_links_absolute(base, resolve_base_href=True)
    links: list[str] = []
    canonical = None
    for element, attribute, link, _ in tree.iterlinks():
        url = normalise(link)
        if not url.startswith(scope):
            continue
        if element.tag == "link" and "canonical" in (element.get("rel") or "").lower():
            canonical = url
        elif element.tag == "a" and attribute == "href" and url not in links:
            links.append(url)
    return links, canonical


# A site's chrome: repeated on every page, it would be indexed, retrieved and quoted as if it
# were each page's content. A <header> inside the main content (an article's title) stays.
CHROME = ("nav", "footer", "aside", "script", "style", "noscript", "form", "template")


def main_content(body: bytes) -> bytes:
    """A page's main content: its `<main>` (or `role="main"`, else the body) without the
    navigation, footers, asides, forms and scripts around it; headings kept."""
    import lxml.html

    try:
        tree = lxml.html.document_fromstring(body)
    except (ValueError, lxml.etree.ParserError):
        return body
    main = tree.xpath("//main | //*[@role='main']")
    for element in tree.xpath(
        " | ".join(f"//{tag}" for tag in CHROME)
        + " | //header[not(ancestor::main) and not(ancestor::article)]"
    ):
        if element.getparent() is not None and not (main and element in main):
            element.drop_tree()
    if main:
        body_element = tree.find("body")
        if body_element is not None:
            for child in list(body_element):
                body_element.remove(child)
            body_element.append(main[0])
    return bytes(lxml.html.tostring(tree, encoding="utf-8"))


def _sitemap_entries(body: bytes) -> list[tuple[str, str]]:
    """("url" | "sitemap", location) of a sitemap or a sitemap index; defusedxml refuses
    entity expansion (billion laughs) and external entities."""
    from defusedxml import ElementTree

    if len(body) > MAX_SITEMAP_BYTES:
        raise LoadError(f"sitemap over {MAX_SITEMAP_BYTES} bytes")
    try:
        root = ElementTree.fromstring(body)
    except Exception as exc:  # ParseError and defusedxml's refusals
        raise LoadError(f"cannot read the sitemap: {exc}") from exc
    out = []
    for kind in ("url", "sitemap"):
        for entry in root.iter(f"{SITEMAP_NS}{kind}"):
            loc = entry.find(f"{SITEMAP_NS}loc")
            if loc is not None and loc.text:
                out.append((kind, loc.text.strip()))
    return out


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
