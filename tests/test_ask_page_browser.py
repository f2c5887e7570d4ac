"""The ask page in a real headless Chromium, driven over the DevTools protocol: log in with a
key, ask an answerable and an unanswerable question (the answer streams in), rate both, and
find the ratings in the hits report; a key scoped to one tier sees only its tier and cannot
rate a wider key's ask. Screenshots of the answer, the refusal and the evidence panel are saved
under the test's tmp dir for a person to look at.

Runs when Debian's `chromium` is installed (`make test` installs it when missing).
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BETA, ingest_two_tiers, make_settings, serve_on_loopback
from test_dashboard_browser import CHROMIUM, FLAGS
from websockets.sync.client import ClientConnection, connect

from api.main import create_app

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed"),
]

NEVER = "Who won the 1998 World Cup?"


class Page:
    """One Chromium tab over the DevTools protocol: just what the test needs."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        call = next(self.ids)
        self.ws.send(json.dumps({"id": call, "method": method, "params": params}))
        while True:  # events arrive between the answers: skip them
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call:
                assert "error" not in message, message
                return dict(message["result"])

    def js(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait(self, expression: str, timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except AssertionError:  # the page is between two documents
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def go(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && location.href !== 'about:blank'")

    def submit(self, form: str, wait_for_path: str) -> None:
        self.js(f"document.querySelector({json.dumps(form)}).submit()")
        self.wait(
            f"location.pathname === {json.dumps(wait_for_path)} && document.readyState === 'complete'"
        )

    def text(self, selector: str) -> list[str]:
        found = self.js(
            f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent.trim())"
        )
        return list(found)

    def screenshot(self, path: Path, selector: str | None = None) -> None:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if selector:
            box = self.js(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect(); return [r.x + scrollX, r.y + scrollY, r.width, r.height]; })()"
            )
            params["clip"] = dict(zip(("x", "y", "width", "height"), box, strict=True)) | {
                "scale": 1
            }
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", **params)["data"]))


@pytest.fixture
def site(tmp_path, embedder) -> Iterator[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path, scheduler_enabled=False))
    with serve_on_loopback(app) as base:
        yield base, ingest_two_tiers(app.state.services, tmp_path)


@pytest.fixture
def page(tmp_path) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    profile = tmp_path / "profile"
    browser = subprocess.Popen(
        [
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1300,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        tabs = httpx.get(f"http://127.0.0.1:{port}/json/list").json()
        target = next(t for t in tabs if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
            yield Page(ws)
    finally:
        browser.kill()
        browser.wait(timeout=30)


def log_in(page: Page, base: str, key: str) -> None:
    page.go(f"{base}/dashboard/ask")
    assert page.js("location.pathname") == "/dashboard/login"  # no session yet: sent to log in
    page.js(f"document.querySelector('input[name=key]').value = {json.dumps(key)}")
    page.submit("form[action='/dashboard/login']", "/dashboard/ask")


def tiers_offered(page: Page) -> list[str]:
    return list(page.js("[...document.querySelectorAll('[data-tier]')].map(e => e.dataset.tier)"))


def ask(page: Page, question: str) -> None:
    page.js(f"document.querySelector('textarea[name=question]').value = {json.dumps(question)}")
    page.js("document.getElementById('result').innerHTML = ''")
    page.js("document.getElementById('ask-form').requestSubmit()")  # the script streams it
    page.wait("!!document.querySelector('#result [data-role=outcome]')")
    assert page.js("location.pathname") == "/dashboard/ask"  # the script handled it in place


def rate(page: Page, rating: str) -> str:
    page.js(f"document.querySelector('#result button[data-rating={rating}]').click()")
    return str(page.wait("document.querySelector('[data-role=rating-status]').dataset.status"))


def test_the_ask_page_in_a_browser(site, page, tmp_path):
    base, keys = site
    log_in(page, base, keys["wide"])
    assert tiers_offered(page) == ["verified", "internal"]

    ask(page, BETA)
    assert page.text("#result [data-role=quote]") == [
        "The Beta cluster is backed up nightly at 01:00."
    ]
    assert page.text("#result [data-role=citation] [data-role=tier]") == ["internal"]
    assert page.text("[data-role=judged]") and page.text("[data-role=retrieved]")
    page.screenshot(tmp_path / "ask-answer.png")
    page.screenshot(tmp_path / "ask-evidence.png", "[data-role=evidence]")
    beta_trace = page.js("document.querySelector('[data-role=outcome]').dataset.trace")
    assert rate(page, "good") == "201"

    ask(page, NEVER)
    reason = page.text("[data-role=refusal-reason]")
    assert reason and reason[0] in {"not_covered", "low_confidence", "no_evidence"}
    assert all(note == "not an answer" for note in page.text("[data-role=closest] td.muted"))
    page.screenshot(tmp_path / "ask-refusal.png")
    assert rate(page, "good") == "201"

    wide = {"Authorization": f"Bearer {keys['wide']}"}
    ratings = httpx.get(f"{base}/reports/hits", headers=wide).json()["ratings"]
    assert ratings["total"] == 2 and ratings["by_rating"]["good"] == 2

    # A key that reads one tier: only that tier on its page, and the wide key's ask is not
    # its to rate, even with a valid session and token.
    page.submit("form[action='/dashboard/logout']", "/dashboard/login")
    log_in(page, base, keys["narrow"])
    assert tiers_offered(page) == ["verified"]
    ask(page, BETA)
    assert "internal" not in page.js("document.getElementById('result').textContent")
    status = page.js(
        "fetch('/dashboard/feedback', {method: 'POST', body: new URLSearchParams({"
        f"trace_id: {json.dumps(beta_trace)}, rating: 'wrong', "
        "csrf: document.querySelector('input[name=csrf]').value})}).then(r => r.status)"
    )
    assert status == 403
    for name in ("ask-answer.png", "ask-evidence.png", "ask-refusal.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    print(f"ask page screenshots: {tmp_path}")
