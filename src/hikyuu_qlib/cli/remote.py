"""``hq`` commands that ask a server: ``--server URL`` and ``--token`` (else ``HQ_SERVER``, ``HQ_TOKEN``).

A command that takes :data:`ServerOption` runs locally unless a server is named (``--server ''`` runs
locally whatever the settings say). With a server it asks it through :class:`hikyuu_qlib.client.Client`
and prints what the local command prints: the same document under ``--format json``, the same table
otherwise. A server that cannot be reached, or refuses the token, is a :class:`ServiceError` (exit 1)
naming the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hikyuu_qlib.domain.errors import InvalidInputError

if TYPE_CHECKING:
    from hikyuu_qlib.client import Client
    from hikyuu_qlib.domain.jobs import Job
    from hikyuu_qlib.settings import Settings

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="ask this hq serve (http://HOST:PORT) instead of reading locally (default: HQ_SERVER; '' runs "
        "locally)",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="bearer token for --server (default: HQ_TOKEN)",
        show_default=False,
    ),
]

#: Seconds a remote call may take (a cold bar read of a whole store, a prediction over years).
REMOTE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Remote:
    """The server a command asks, and its token."""

    url: str
    token: str | None

    @contextmanager
    def client(self) -> Iterator[Client]:
        """A client of the server; transport failures become :class:`ServiceError` naming it."""
        import httpx

        from hikyuu_qlib.client import Client
        from hikyuu_qlib.client.base import ServiceError

        try:
            with Client(self.url, self.token, timeout=httpx.Timeout(REMOTE_TIMEOUT_S, connect=10.0)) as hq:
                yield hq
        except httpx.TimeoutException as exc:
            raise ServiceError(
                f"hq serve at {self.url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise ServiceError(f"cannot reach hq serve at {self.url}: {exc}") from exc


def remote_of(server: str | None, token: str | None, settings: Settings) -> Remote | None:
    """The server named by ``--server`` (``''``: none), else by the settings; None runs locally."""
    url = settings.server if server is None else server.strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"invalid --server {url!r}: expected http://HOST:PORT or https://…")
    secret = settings.token.get_secret_value() if settings.token is not None else None
    return Remote(url.rstrip("/"), token if token is not None else secret)


def refuse_local_options(**given: object) -> None:
    """Options that choose what a local run reads mean nothing to a server: refuse them by name."""
    named = [name for name, value in given.items() if value not in (None, False)]
    if named:
        options = ", ".join(f"--{n.replace('_', '-')}" for n in named)
        raise InvalidInputError(f"{options}: only for a local run (the server reads its own settings)")


def day(value: str | None, field: str) -> str | None:
    """A date option as the server takes it (``YYYY-MM-DD``); a time of day cannot be sent."""
    import datetime as dt

    from hikyuu_qlib.domain.dates import parse_datetime

    if value is None:
        return None
    when = parse_datetime(value, field=field)
    if when.time() != dt.time(0):
        raise InvalidInputError(f"invalid {field} {value!r}: a server takes days (YYYY-MM-DD), not times")
    return when.date().isoformat()


def run_job(hq: Client, kind: str, body: dict[str, Any], fmt: object, url: str) -> Job:
    """Submit a job and wait for it: its record once it succeeded (:class:`JobFailedError` when it failed
    or was cancelled). Ctrl-C, or any failure while waiting, cancels it."""
    from hikyuu_qlib.cli.output import stderr_console

    job = hq.submit(kind, {k: v for k, v in body.items() if v is not None})
    if str(fmt) != "json":
        stderr_console().print(f"{kind} job {job.id} queued on {url}", highlight=False)
    try:
        return hq.wait(job, poll=0.5)
    except BaseException:
        with contextlib.suppress(Exception):
            hq.cancel(job.id)
        raise
