"""Secrets out of what is printed: the password of a URL is masked before the URL reaches a message or a log.

:func:`mask_url` renders one URL of any scheme (``postgresql://``, ``redis://``, ``sqlite:///`` …) with its
password replaced by ``***`` (``postgresql://user:***@host/db``); :func:`mask_secrets` does the same to every
URL and every libpq ``password=…`` pair inside a free text (a driver's error message, a log line).
:class:`RedactingFilter` applies it to log records.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
# scheme://authority: the authority runs to the first "/", "?", "#", quote or whitespace
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#\s'\"]*)")
_KEY_VALUE = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)


def _mask_authority(match: re.Match[str]) -> str:
    authority = match["authority"]
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return match.group(0)
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return match.group(0)
    return f"{match['scheme']}{user}:{MASK}@{host}"


def mask_url(url: str) -> str:
    """The URL with its password masked (unchanged when it has none)."""
    return _URL.sub(_mask_authority, url, count=1)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it, and every ``password=…`` pair, masked."""
    if "://" in text:
        text = _URL.sub(_mask_authority, text)
    if "password" in text.lower():
        text = _KEY_VALUE.sub(lambda m: f"{m['key']}{MASK}", text)
    return text


class RedactingFilter(logging.Filter):
    """Masks passwords in a record's rendered message (for handlers that print records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
