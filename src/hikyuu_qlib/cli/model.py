"""``hq model …``: the model registry commands (filled in by the registry work)."""

from __future__ import annotations

import typer

model_app = typer.Typer(help="Model registry: list, show, promote, remove.", no_args_is_help=True)
