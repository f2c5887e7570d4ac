"""API keys: each scoped to a set of trust tiers, stored hashed in the ops database.

A request may narrow its tiers to a subset of its key's, never widen them.

    keys = KeyStore(engine); created = keys.create("support-bot", ["verified", "internal"])
    keys.tiers_for(created.key)  # -> ["verified", "internal"]
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select

from rag.ops.db import api_keys
from rag.types import utc_now

KEY_PREFIX = "rgo_"


def key_digest(key: str) -> str:
    """What identifies a key once it is issued: the database, the rate limiter and browser
    sessions hold this, never the key. Keys are 256-bit random tokens: a plain SHA-256 is
    enough, no password stretching needed."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    key: str
    name: str
    tiers: list[str]


@dataclass(frozen=True)
class Principal:
    """Who is asking and which tiers they may read."""

    name: str | None
    tiers: list[str]


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, tiers: list[str]) -> CreatedKey:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    name=name, key_hash=key_digest(key), tiers=list(tiers), created_at=utc_now()
                )
            )
        return CreatedKey(key=key, name=name, tiers=list(tiers))

    def any_keys(self) -> bool:
        with self.engine.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
            ).scalar_one()
        return bool(count)

    def principal(self, key: str) -> Principal | None:
        return self.principal_by_digest(key_digest(key))

    def principal_by_digest(self, digest: str) -> Principal | None:
        """The live key with this digest (`key_digest`), or None when unknown or revoked."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_keys.c.name, api_keys.c.tiers).where(
                    (api_keys.c.key_hash == digest) & api_keys.c.revoked_at.is_(None)
                )
            ).first()
        return Principal(name=row[0], tiers=list(row[1])) if row else None


class TierError(ValueError):
    """`unknown` tiers are a bad request (422); `forbidden` ones are a permission error (403)."""

    def __init__(self, message: str, forbidden: bool) -> None:
        super().__init__(message)
        self.forbidden = forbidden


def resolve_tiers(
    configured: list[str], allowed: list[str], requested: list[str] | None
) -> list[str]:
    """The tiers to query, most trusted first: the request's, which must be within `allowed`."""
    if requested is None:
        return [t for t in configured if t in allowed]
    unknown = [t for t in requested if t not in configured]
    if unknown:
        raise TierError(
            f"unknown tier(s) {', '.join(unknown)}; configured tiers: {', '.join(configured)}",
            forbidden=False,
        )
    forbidden = [t for t in requested if t not in allowed]
    if forbidden:
        raise TierError(
            f"this key may not read tier(s) {', '.join(forbidden)}; "
            f"it may read: {', '.join(allowed) or 'none'}",
            forbidden=True,
        )
    return [t for t in configured if t in requested]
