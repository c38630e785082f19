"""Passwords of URLs never reach a message or a log line."""

from __future__ import annotations

import logging

import pytest

from hikyuu_qlib.observability.redact import RedactingFilter, mask_secrets, mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:pw@host:5432/db", "postgresql://user:***@host:5432/db"),
        (
            "postgresql+asyncpg://user:p%40ss@host/db?sslmode=require",
            "postgresql+asyncpg://user:***@host/db?sslmode=require",
        ),
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),  # an unescaped @ in the password
        ("redis://:only-a-password@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://default:pw@cache", "redis://default:***@cache"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),  # no password: unchanged
        ("sqlite:////tmp/a:b@c/registry.db", "sqlite:////tmp/a:b@c/registry.db"),  # a path, not a password
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_secrets_in_free_text_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "cannot reach 'postgresql://a:pw1@h/db' nor redis://:pw2@r:6379; "
        "dsn host=h user=a password=pw3 dbname=x; password = 'p w4'"
    )
    masked = mask_secrets(text)
    for secret in ("pw1", "pw2", "pw3", "p w4"):
        assert secret not in masked
    assert "postgresql://a:***@h/db" in masked and "password=***" in masked
    logger = logging.getLogger("hikyuu_qlib.test_redact")
    logger.addFilter(RedactingFilter())
    # the capture handler on this logger itself: a CLI test in the same process may have configured the
    # package's logger not to propagate to the root, where caplog listens by default
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="hikyuu_qlib.test_redact"):
            logger.info("opening %s", "postgresql://a:pw5@h/db")
    finally:
        logger.removeHandler(caplog.handler)
    assert caplog.records[-1].getMessage() == "opening postgresql://a:***@h/db"
