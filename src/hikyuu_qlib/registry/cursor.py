"""Opaque keyset cursors: the last row's sort key, bound to one query and one registry, signed.

A cursor is ``base64url(json).base64url(hmac)``; the HMAC key is the registry's own secret (made by the
first migration), and the payload names the order and a fingerprint of the filter. A cursor that was
edited, truncated, made by another registry or used with another filter or order raises
:class:`InvalidCursorError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from hikyuu_qlib.domain.errors import InvalidCursorError

_VERSION = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Signs and checks cursors with one registry's secret."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, order: str, fingerprint: str, keys: list[Any]) -> str:
        payload = json.dumps({"v": _VERSION, "o": order, "f": fingerprint, "k": keys}, separators=(",", ":"))
        raw = payload.encode()
        return f"{_b64(raw)}.{_b64(self._mac(raw))}"

    def decode(self, token: str, order: str, fingerprint: str) -> list[Any]:
        """The keys of a cursor made by :meth:`encode` for this order and filter."""
        body, sep, mac = token.strip().partition(".")
        try:
            raw, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise InvalidCursorError(
                f"invalid cursor {token[:40]!r}: not a cursor this registry made"
            ) from None
        if not sep or not hmac.compare_digest(given, self._mac(raw)):
            raise InvalidCursorError(
                f"invalid cursor {token[:40]!r}: it was altered or made by another registry"
            )
        data = json.loads(raw)
        if data.get("v") != _VERSION or not isinstance(data.get("k"), list):
            raise InvalidCursorError("invalid cursor: unsupported cursor version")
        if data.get("o") != order or data.get("f") != fingerprint:
            raise InvalidCursorError(
                "invalid cursor: it belongs to a query with another filter or order; "
                "repeat the same filter and order, or start again without a cursor"
            )
        keys: list[Any] = data["k"]
        return keys
