"""The ask page's server side, through real HTTP forms: login sessions, CSRF, tier rules, the
answer and refusal pages, the stream, and ratings (the browser drives it in
tests/test_ask_page_browser.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import unescape

import pytest
from conftest import ALPHA, BETA, ingest_two_tiers, make_settings
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.main import create_app
from api.session import COOKIE, Sessions
from rag.ops.auth import key_digest
from rag.ops.db import api_keys

pytestmark = pytest.mark.integration


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def roles(page: str, role: str) -> list[str]:
    """The text of every element marked data-role=ROLE (flat elements only)."""
    return [unescape(t) for t in re.findall(rf'data-role="{role}"[^>]*>([^<]*)<', page)]


@pytest.fixture
def site(tmp_path, embedder):  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, scheduler_enabled=False)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        yield client, ingest_two_tiers(services, tmp_path), services


def login(client: TestClient, key: str) -> str:
    response = client.post("/dashboard/login", data={"key": key, "next": "/dashboard/ask"})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/ask"
    page = client.get("/dashboard/ask")
    assert page.status_code == 200
    return page.text


def test_a_browser_logs_in_with_a_key_and_gets_a_session_not_the_key(site):
    client, keys, _ = site
    first = client.get("/dashboard/ask")
    assert first.status_code == 303
    assert first.headers["location"] == "/dashboard/login?next=/dashboard/ask"
    wrong = client.post("/dashboard/login", data={"key": "rgo_nope"})
    assert wrong.status_code == 401 and "unknown or revoked API key" in wrong.text
    answer = client.post("/dashboard/login", data={"key": keys["narrow"], "next": "//evil.test"})
    assert answer.headers["location"] == "/dashboard/ask"  # no open redirect
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert keys["narrow"] not in cookie and key_digest(keys["narrow"]) in cookie
    page = client.get("/dashboard/ask")
    assert page.status_code == 200 and "key narrow" in page.text
    # The operations dashboard takes the same session.
    assert client.get("/dashboard").status_code == 200
    # A tampered cookie is no session.
    value = cookie.split(";")[0].split("=", 1)[1]
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-1] + ("1" if value[-1] == "0" else "0"))
    assert client.get("/dashboard/ask").status_code == 303
    client.cookies.set(COOKIE, value)
    assert client.get("/dashboard/ask").status_code == 200
    # Logging out ends it.
    client.cookies.clear()
    login(client, keys["narrow"])
    assert client.post("/dashboard/logout").status_code == 303
    assert client.get("/dashboard/ask").status_code == 303


def test_revoking_the_key_ends_its_sessions(site):
    client, keys, services = site
    login(client, keys["narrow"])
    with services.engine.begin() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.key_hash == key_digest(keys["narrow"]))
            .values(revoked_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
    assert client.get("/dashboard/ask").status_code == 303


def test_sessions_expire_and_csrf_tokens_belong_to_their_session():
    now = [1_000_000.0]
    sessions = Sessions("s" * 32, hours=1, clock=lambda: now[0])
    cookie = sessions.issue("abc")
    assert sessions.read(cookie) == "abc"
    assert sessions.read(cookie.replace("abc", "abd")) is None  # another key's digest
    assert sessions.read(None) is None and sessions.read("a.b.c") is None
    assert Sessions("t" * 32, hours=1, clock=lambda: now[0]).read(cookie) is None  # other secret
    token = sessions.csrf_token(cookie)
    assert sessions.csrf_ok(cookie, token)
    assert not sessions.csrf_ok(sessions.issue("xyz"), token)
    assert not sessions.csrf_ok(cookie, None) and not sessions.csrf_ok(cookie, "")
    now[0] += 3601
    assert sessions.read(cookie) is None


def test_the_page_answers_and_refuses_for_the_key_s_tiers_only(site):
    client, keys, _ = site
    page = login(client, keys["narrow"])
    assert re.findall(r'data-tier="(\w+)"', page) == ["verified"]
    csrf = csrf_of(page)
    # A form post without this session's token is refused: another site cannot post for us.
    assert client.post("/dashboard/ask", data={"question": ALPHA}).status_code == 403
    bad = client.post("/dashboard/ask", data={"question": ALPHA, "csrf": "0" * 64})
    assert bad.status_code == 403 and "CSRF" in bad.text

    answered = client.post("/dashboard/ask", data={"question": ALPHA, "csrf": csrf})
    assert answered.status_code == 200
    assert roles(answered.text, "quote") == ["Alpha servers restart every Sunday at 03:00."]
    assert roles(answered.text, "tier") == ["verified"]
    assert float(roles(answered.text, "threshold")[0]) > 0
    assert roles(answered.text, "retrieved") and roles(answered.text, "judged")
    assert "internal" not in re.sub(r"<script>.*?</script>", "", answered.text, flags=re.S)

    # The internal tier's document is out of this key's reach: refused, and never shown.
    refused = client.post("/dashboard/ask", data={"question": BETA, "csrf": csrf})
    assert roles(refused.text, "refusal-reason")[0] in {"not_covered", "low_confidence"}
    assert "beta.md" not in refused.text
    widened = client.post(
        "/dashboard/ask", data={"question": BETA, "tiers": ["internal"], "csrf": csrf}
    )
    assert widened.status_code == 403 and "may not read tier(s) internal" in widened.text
    blank = client.post("/dashboard/ask", data={"question": "   ", "csrf": csrf})
    assert blank.status_code == 422 and "must not be blank" in blank.text


def test_the_stream_sends_sentences_then_the_result_page(site):
    client, keys, _ = site
    csrf = csrf_of(login(client, keys["wide"]))
    with client.stream(
        "POST", "/dashboard/ask/stream", data={"question": BETA, "csrf": csrf}
    ) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    events = re.findall(r"event: (\w+)\ndata: (.*)\n\n", body)
    assert [name for name, _ in events] == ["sentence", "result"]
    assert json.loads(events[0][1])["text"].startswith("The Beta cluster is backed up nightly")
    result = json.loads(events[1][1])
    assert roles(result["html"], "quote") == ["The Beta cluster is backed up nightly at 01:00."]
    assert f'value="{result["trace_id"]}"' in result["html"]
    no_token = client.post("/dashboard/ask/stream", data={"question": BETA})
    assert no_token.status_code == 403


def test_ratings_from_the_page_follow_the_tier_rule_and_reach_the_report(site):
    client, keys, _ = site
    wide_csrf = csrf_of(login(client, keys["wide"]))
    beta = client.post("/dashboard/ask", data={"question": BETA, "csrf": wide_csrf})
    beta_trace = re.search(r'data-trace="([^"]+)"', beta.text).group(1)  # type: ignore[union-attr]

    narrow_csrf = csrf_of(login(client, keys["narrow"]))
    alpha = client.post("/dashboard/ask", data={"question": ALPHA, "csrf": narrow_csrf})
    alpha_trace = re.search(r'data-trace="([^"]+)"', alpha.text).group(1)  # type: ignore[union-attr]

    def rate(trace: str, rating: str, csrf: str = narrow_csrf):  # type: ignore[no-untyped-def]
        data = {"trace_id": trace, "rating": rating, "csrf": csrf, "comment": ""}
        return client.post("/dashboard/feedback", data=data)

    wider = rate(beta_trace, "wrong")  # the wide key's ask: the narrow key may not rate it
    assert wider.status_code == 403 and "reads tiers this key may not" in wider.text
    assert rate(alpha_trace, "great").status_code == 422
    assert rate(alpha_trace, "good", csrf=wide_csrf).status_code == 403  # another session's token
    done = rate(alpha_trace, "good")
    assert done.status_code == 201 and roles(done.text, "notice") == [
        f"Rated good: ask {alpha_trace}"
    ]
    wide = {"Authorization": f"Bearer {keys['wide']}"}
    ratings = client.get("/reports/hits", headers=wide).json()["ratings"]
    assert ratings["total"] == 1 and ratings["by_rating"]["good"] == 1


def test_a_bearer_key_needs_no_session_and_no_csrf(site):
    client, keys, _ = site
    headers = {"Authorization": f"Bearer {keys['narrow']}"}
    page = client.post("/dashboard/ask", data={"question": ALPHA}, headers=headers)
    assert page.status_code == 200 and roles(page.text, "quote")
    assert client.get("/dashboard/ask", headers={"Authorization": "Bearer x"}).status_code == 401
