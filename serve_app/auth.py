"""API-key checks.

Keys are compared as SHA-256 digests with `hmac.compare_digest`, over every configured key
without stopping early, so neither the position of a match nor a key's length shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac

from serve_app.settings import DEV_API_KEY, Settings

API_KEY_HEADER = "X-API-Key"
#: ``Authorization: Bearer <key>`` is accepted too: what OpenAI's clients (and most HTTP tooling) send.
BEARER_PREFIX = "bearer "


def presented_key(headers) -> str | None:
    """The key a request presents: its ``X-API-Key`` header, else an ``Authorization: Bearer`` token.
    ``headers``: a mapping with lower-case names (Starlette's Headers, or a plain dict)."""
    key = headers.get(API_KEY_HEADER.lower())
    if key:
        return key
    authorization = headers.get("authorization", "")
    if authorization[:len(BEARER_PREFIX)].lower() == BEARER_PREFIX:
        return authorization[len(BEARER_PREFIX):].strip() or None
    return None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyChecker:
    def __init__(self, settings: Settings):
        keys = list(settings.api_keys)
        if settings.dev_mode:
            keys.append(DEV_API_KEY)
        self._digests = [_digest(k) for k in keys]

    def identify(self, presented: str | None) -> str | None:
        """The caller's key id (a digest prefix, safe to store and log), or None when not valid."""
        if not presented:
            return None
        digest = _digest(presented)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return digest.hex()[:16] if matched else None
