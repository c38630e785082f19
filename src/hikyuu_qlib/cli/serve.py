"""``hq serve``: the HTTP API (see :mod:`hikyuu_qlib.service`), and ``hq token``: a new API token."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from hikyuu_qlib.cli.options import DbOption, SourceOption
from hikyuu_qlib.cli.output import guarded


@guarded
def serve(
    host: Annotated[
        str, typer.Option("--host", help="address to bind (loopback unless told otherwise)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64, help="server processes")] = 1,
    public_read: Annotated[
        bool, typer.Option("--public-read", help="reads need no token (writes always need a write token)")
    ] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="log every request on stderr")] = False,
    source: SourceOption = None,
    db: DbOption = None,
) -> None:
    """Serve market data, models, predictions and jobs over HTTP (OpenAPI at /openapi.json, docs at /docs).

    Tokens come from HQ_API_TOKENS (make one with ``hq token``); SIGTERM drains in-flight requests.
    """
    from hikyuu_qlib.service.server import serve as run
    from hikyuu_qlib.settings import load_settings

    settings = load_settings()
    updates: dict[str, object] = {}
    if source:
        updates["source"] = source
    if db:
        updates["database_url"] = db
    if public_read:
        updates["api_public_read"] = True
    run(settings.model_copy(update=updates), host=host, port=port, workers=workers, access_log=access_log)


@guarded
def token(
    name: Annotated[str, typer.Option("--name", help="who holds the token")] = "default",
    scope: Annotated[str, typer.Option("--scope", help="read or write")] = "read",
) -> None:
    """Make an API token: prints it once, and the HQ_API_TOKENS entry (its hash) the server keeps."""
    from hikyuu_qlib.domain.errors import InvalidInputError
    from hikyuu_qlib.service.auth import new_token

    if scope not in ("read", "write"):
        raise InvalidInputError(f"invalid scope {scope!r}: expected read or write")
    secret, entry = new_token(name, scope)  # type: ignore[arg-type]
    doc = {"token": secret, "entry": entry.model_dump()}
    sys.stdout.write(json.dumps(doc) + "\n")
