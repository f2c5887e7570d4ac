"""Web sites as sources, over real HTTP on loopback: a generated site with a sitemap, robots.txt,
a redirect, a canonical URL, a 404, a 500, a slow page, an oversized page and a PDF. The first
run ingests exactly the allowed pages; the second downloads nothing unchanged (the server
counts its 304s); after the site changes the third converges to it. The fetch policy refuses
URLs outside the allow-list, redirects out of it, file:// URLs and host names that resolve to
private addresses."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import finished_job, make_settings
from fastapi.testclient import TestClient

from api.main import create_app
from ingestion.loaders import LoadLimits
from ingestion.runner import IngestRequest
from ingestion.web import FetchPolicy, FetchRefused, WebReader, WebSite
from rag.ops.reports import freshness_report
from rag.types import utc_now
from service.ingest import make_ingestor

pytestmark = pytest.mark.integration


def pdf_bytes(text: str) -> bytes:
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 720, text)
    page.save()
    return buffer.getvalue()


@dataclass
class Site:
    """The pages a loopback server serves, what it was asked, and what it answered 304."""

    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # path -> (type, body)
    redirects: dict[str, str] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # paths answered 503
    requests: Counter[str] = field(default_factory=Counter)
    not_modified: Counter[str] = field(default_factory=Counter)
    base: str = ""

    def html(self, path: str, title: str, body: str, links: list[str] = ()) -> None:  # type: ignore[assignment]
        anchors = "".join(f'<a href="{link}">{link}</a> ' for link in links)
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{body}</p>{anchors}</body></html>"
        self.pages[path] = ("text/html; charset=utf-8", page.encode())


@contextmanager
def serve(site: Site) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path
            site.requests[path] = site.requests[path] + 1
            if path in site.redirects:
                self.send_response(301)
                self.send_header("Location", site.redirects[path])
                self.end_headers()
                return
            if path == "/docs/broken.html":
                self.send_error(500)
                return
            if path in site.broken:
                self.send_error(503)
                return
            if path == "/docs/slow.html":
                time.sleep(2.5)
            if path == "/docs/huge.html":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                chunk = b"<p>" + b"x" * 65536 + b"</p>"
                try:
                    for _ in range(21 * 16):  # 21 MiB, over the 20 MiB default
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            if path not in site.pages:
                self.send_error(404)
                return
            kind, body = site.pages[path]
            etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
            if self.headers.get("If-None-Match") == etag:
                site.not_modified[path] += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Mon, 02 Mar 2026 09:00:00 GMT")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the crawler hangs up on oversized and slow pages: expected, not news

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    other = Site()
    # `other` is another loopback port: never allowed by the site's prefix.
    with serve(other) as base, serve(site) as url:
        site.base = url
        site.pages["/robots.txt"] = ("text/plain", b"User-agent: *\nDisallow: /docs/private/\n")
        site.html(
            "/docs/",
            "Staff handbook",
            "Everything staff need to know.",
            [
                "leave.html",
                "travel.html?ref=nav",
                "moved.html",
                "missing.html",
                "broken.html",
                "slow.html",
                "huge.html",
                "private/secret.html",
                "manual.pdf",
                "to-metadata.html",
                "to-other-port.html",
                "/elsewhere/outside.html",
                f"{base}/docs/other.html",
            ],
        )
        site.html("/docs/leave.html", "Parental leave", "Parents get 16 weeks of paid leave.")
        site.pages["/docs/travel.html?ref=nav"] = (
            "text/html",
            b'<html><head><link rel="canonical" href="travel.html"></head><body><h1>Travel</h1>'
            b"<p>Train travel is booked in second class.</p></body></html>",
        )
        site.html("/docs/travel.html", "Travel", "Train travel is booked in second class.")
        site.redirects["/docs/moved.html"] = "/docs/leave.html"
        site.redirects["/docs/to-metadata.html"] = "http://169.254.169.254/latest/meta-data/"
        site.redirects["/docs/to-other-port.html"] = f"{base}/docs/other.html"
        site.html("/docs/private/secret.html", "Secret", "Robots may not read this.")
        site.html("/elsewhere/outside.html", "Outside", "Outside the start URL's folder.")
        site.pages["/docs/manual.pdf"] = (
            "application/pdf",
            pdf_bytes("The laptop manual says laptops are replaced every three years."),
        )
        yield site


def run(services, site: Site, **kw):  # type: ignore[no-untyped-def]
    request = IngestRequest("docs", "internal", WebSite(f"{site.base}/docs/", **kw), "30d")
    return make_ingestor(services).run(request)


def test_a_site_is_crawled_politely_and_kept_fresh(site, services_factory):
    services = services_factory(scheduler_enabled=False, fetch_timeout_s=1.0, fetch_delay_s=0)
    docs = f"{site.base}/docs/"
    first = run(services, site)
    assert first.status == "succeeded", first.error
    results = {f.path: (f.status, f.reason or "") for f in first.files}
    ingested = {p for p, (s, _) in results.items() if s == "added"}
    assert ingested == {docs, f"{docs}leave.html", f"{docs}travel.html", f"{docs}manual.pdf"}
    failed = {p: r for p, (s, r) in results.items() if s == "failed"}
    assert "500" in failed[f"{docs}broken.html"]
    assert "timed out" in failed[f"{docs}slow.html"]
    assert "byte limit" in failed[f"{docs}huge.html"]
    assert "outside the allowed" in failed[f"{docs}to-metadata.html"]
    assert "outside the allowed" in failed[f"{docs}to-other-port.html"]
    assert f"{docs}missing.html" not in results  # a 404 is no document
    assert site.requests["/docs/private/secret.html"] == 0  # robots.txt
    assert site.requests["/elsewhere/outside.html"] == 0  # outside the start folder
    assert services.catalog.documents("docs")[f"{docs}leave.html"].source_modified_at.year == 2026

    answer = services.asker.ask("How many weeks of paid leave do parents get?", ["internal"])
    assert not answer.refused and answer.citations[0].uri == f"{docs}leave.html"
    assert answer.citations[0].source_modified_at.startswith("2026-03-02")

    before = Counter(site.requests)
    second = run(services, site)
    assert second.counts["unchanged"] == 4 and second.counts["added"] == 0, [
        (f.path, f.status, f.reason) for f in second.files
    ]
    for path in ("/docs/", "/docs/leave.html", "/docs/travel.html?ref=nav", "/docs/manual.pdf"):
        assert site.not_modified[path] == 1, path  # asked conditionally, nothing downloaded
    report = freshness_report(services.catalog, services.jobs, services.store, utc_now())
    (shown,) = report.sources
    assert (shown.kind, shown.last_read.not_read, shown.last_read.read) == ("web", 4, 0)  # type: ignore[union-attr]
    assert shown.last_read.failed == len(shown.last_failures) == 5  # type: ignore[union-attr]
    fetched = site.requests - before
    assert fetched["/docs/private/secret.html"] == 0 and fetched["/docs/leave.html"] == 1
    assert fetched["/docs/moved.html"] == 1  # its redirect to a page read this run: no download

    site.html("/docs/leave.html", "Parental leave", "Parents get 20 weeks of paid leave.")
    del site.pages["/docs/travel.html"]
    del site.pages["/docs/travel.html?ref=nav"]
    site.html("/docs/canteen.html", "Canteen", "The canteen opens at 11:30 on weekdays.")
    site.html(
        "/docs/",
        "Staff handbook",
        "Everything staff need.",
        ["leave.html", "canteen.html", "manual.pdf"],
    )
    third = run(services, site)
    statuses = {f.path: f.status for f in third.files}
    assert statuses[f"{docs}leave.html"] == "updated"
    assert statuses[f"{docs}canteen.html"] == "added"
    assert statuses[f"{docs}travel.html"] == "deleted"
    assert statuses[f"{docs}manual.pdf"] == "unchanged"
    assert set(services.catalog.documents("docs")) == {
        docs,
        f"{docs}leave.html",
        f"{docs}canteen.html",
        f"{docs}manual.pdf",
    }
    answer = services.asker.ask("How many weeks of paid leave do parents get?", ["internal"])
    assert "20 weeks" in (answer.answer or "")

    # A robots.txt the server fails to give stops the run: nothing is crawled or deleted.
    site.broken.add("/robots.txt")
    failing = run(services, site)
    assert failing.status == "failed" and "robots.txt answered 503" in (failing.error or "")
    assert len(services.catalog.documents("docs")) == 4
    site.broken.clear()

    # A page that now fails keeps its last good version in the index.
    site.redirects["/docs/leave.html"] = "/docs/leave.html"  # a redirect loop
    fourth = run(services, site)
    assert {f.path: f.status for f in fourth.files}[f"{docs}leave.html"] == "failed"
    answer = services.asker.ask("How many weeks of paid leave do parents get?", ["internal"])
    assert "20 weeks" in (answer.answer or "")


def test_a_crawl_can_start_from_a_sitemap_index(site):
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    site.pages["/docs/sitemap-index.xml"] = (
        "application/xml",
        f"<sitemapindex {ns}><sitemap><loc>{site.base}/docs/sitemap.xml</loc></sitemap>"
        f"<sitemap><loc>http://169.254.169.254/sitemap.xml</loc></sitemap></sitemapindex>".encode(),
    )
    site.pages["/docs/sitemap.xml"] = (
        "application/xml",
        f"<urlset {ns}><url><loc>{site.base}/docs/leave.html</loc></url>"
        f"<url><loc>manual.pdf</loc></url><url><loc>{site.base}/elsewhere/outside.html</loc></url>"
        f"<url><loc>{site.base}/docs/private/secret.html</loc></url></urlset>".encode(),
    )
    start = WebSite(f"{site.base}/docs/sitemap-index.xml", max_depth=0)
    policy = FetchPolicy(prefixes=(), delay_s=0).for_site(start)
    pages = WebReader(policy, LoadLimits()).pages(start, {})
    assert sorted(p.doc_id for p in pages) == [
        f"{site.base}/docs/leave.html",
        f"{site.base}/docs/manual.pdf",
    ]
    assert all(p.doc is not None for p in pages)
    assert (
        site.requests["/docs/private/secret.html"] == site.requests["/elsewhere/outside.html"] == 0
    )


def test_a_page_is_read_without_the_site_s_chrome_and_its_menus_still_crawled(site):
    site.pages["/docs/chrome.html"] = (
        "text/html",
        b"<html><head><title>Leave</title></head><body>"
        b'<header>ACME intranet <a href="/docs/">Home</a></header>'
        b'<nav><a href="leave.html">Parental leave</a> Site menu</nav>'
        b"<main><article><header><h1>Leave rules</h1></header>"
        b"<p>Carers get five days of carer's leave a year.</p></article>"
        b"<aside>Popular pages</aside></main><footer>Copyright ACME 2026</footer></body></html>",
    )
    start = WebSite(f"{site.base}/docs/chrome.html", max_pages=3, max_depth=1)
    policy = FetchPolicy(prefixes=(), delay_s=0).for_site(start)
    pages = WebReader(policy, LoadLimits()).pages(start, {})
    first = pages[0].doc
    assert first is not None and "five days of carer's leave" in first.text
    assert "Leave rules" in first.text  # the article's heading is kept
    for chrome in ("ACME intranet", "Site menu", "Popular pages", "Copyright"):
        assert chrome not in first.text
    assert f"{site.base}/docs/leave.html" in [p.doc_id for p in pages]  # its menu was crawled


def test_crawl_delay_from_robots_is_obeyed(site):
    site.pages["/robots.txt"] = ("text/plain", b"User-agent: *\nCrawl-delay: 2\n")
    waits: list[float] = []
    policy = FetchPolicy(prefixes=(), delay_s=0, timeout_s=1).for_site(
        WebSite(f"{site.base}/docs/")
    )
    reader = WebReader(policy, LoadLimits(), sleep=waits.append)
    pages = reader.pages(WebSite(f"{site.base}/docs/", max_pages=3), {})
    assert len(pages) == 3 and len(waits) == 2 and all(1.5 < w <= 2 for w in waits)


def test_the_policy_checks_urls_and_the_address_connected_to():
    policy = FetchPolicy(prefixes=("http://127.0.0.1:8080/docs/",))
    policy.check_url("http://127.0.0.1:8080/docs/a.html")
    for url in ("http://127.0.0.1:8081/docs/a", "http://169.254.169.254/", "file:///etc/passwd"):
        with pytest.raises(FetchRefused):
            policy.check_url(url)
    policy.check_address("127.0.0.1")  # named by the prefix itself
    policy.check_address("93.184.216.34")  # public
    for address in ("10.0.0.5", "169.254.169.254", "::1", "192.168.1.1"):
        with pytest.raises(FetchRefused, match="private, loopback or link-local"):
            policy.check_address(address)
    FetchPolicy(prefixes=(), private_networks=("10.0.0.0/8",)).check_address("10.0.0.5")


def test_a_host_name_that_resolves_to_a_private_address_is_refused(site, services_factory):
    services = services_factory(scheduler_enabled=False, fetch_delay_s=0)
    named = site.base.replace("127.0.0.1", "localhost")
    request = IngestRequest("docs", "internal", WebSite(f"{named}/docs/"), "30d")
    job = make_ingestor(services).run(request)
    (only,) = job.files
    assert only.status == "failed" and "private, loopback or link-local" in (only.reason or "")
    assert sum(site.requests.values()) == 0  # refused before connecting


def test_the_jobs_api_fetches_only_under_its_url_prefixes(site, tmp_path, embedder):
    allowed = f"{site.base}/docs/"
    settings = make_settings(
        tmp_path, scheduler_enabled=False, fetch_delay_s=0, ingest_roots=[tmp_path, allowed]
    )
    with TestClient(create_app(settings)) as client:
        ok = client.post("/ingest/jobs", json={"path": allowed, "tier": "internal", "max_pages": 2})
        assert ok.status_code == 202, ok.text
        outside = client.post(
            "/ingest/jobs", json={"path": f"{site.base}/elsewhere/", "tier": "internal"}
        )
        assert outside.status_code == 403 and "outside the allowed URL" in outside.json()["detail"]
        metadata = {"path": "http://169.254.169.254/latest/", "tier": "internal"}
        assert client.post("/ingest/jobs", json=metadata).status_code == 403
        local = client.post("/ingest/jobs", json={"path": "file:///etc/passwd", "tier": "internal"})
        assert local.status_code == 422 and "http(s)://" in local.json()["detail"]
        job = finished_job(client, ok.json()["job_id"])
        assert job["status"] == "succeeded" and job["counts"]["added"] == 2, job
