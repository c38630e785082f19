"""``hq data …``: stock lists, bars, export and import."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Market data: stocks, bars, export to Qlib, import TDX.", no_args_is_help=True)
