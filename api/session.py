"""Browser sessions for the operator pages, and their CSRF tokens.

API clients send `Authorization: Bearer <key>`, which a browser's links and plain HTML forms
cannot. The login page exchanges a key for a cookie instead:

    ragops_session = <key digest>.<expires, unix seconds>.<HMAC-SHA256 of both>

The cookie names the key by its digest (`rag.ops.auth.key_digest`), never the key itself, and is
checked against the key store on every request, so revoking a key ends its sessions. It is
HttpOnly (scripts cannot read it), SameSite=Lax (another site's form posts do not carry it) and
Secure behind HTTPS. Every form that changes something also carries a CSRF token, an HMAC of
the session under the same secret: a page on another site can make the browser post, but cannot
read the token it would need.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

COOKIE = "ragops_session"
CSRF_FIELD = "csrf"


class Sessions:
    def __init__(
        self, secret: str | None, hours: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret.encode() if secret else secrets.token_bytes(32)
        self.seconds = int(hours * 3600)
        self.clock = clock

    def _sign(self, value: str) -> str:
        return hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()

    def issue(self, digest: str) -> str:
        """A cookie value for the key with this digest, good for `hours`."""
        value = f"{digest}.{int(self.clock()) + self.seconds}"
        return f"{value}.{self._sign(value)}"

    def read(self, cookie: str | None) -> str | None:
        """The key digest a cookie names, or None when it is forged, altered or expired."""
        digest, _, rest = (cookie or "").partition(".")
        expires, _, signature = rest.partition(".")
        if not (digest and expires.isdigit() and signature):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{digest}.{expires}")):
            return None
        return digest if int(expires) > self.clock() else None

    def csrf_token(self, session: str) -> str:
        """The token forms of this session carry (`session`: the cookie, or a fixed name for
        a caller without one, such as loopback without keys)."""
        return self._sign(f"csrf|{session}")

    def csrf_ok(self, session: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")
