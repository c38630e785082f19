"""``hq config …``: the settings with where each value comes from (show), and writing the config file (set).

Neither command reads the settings before it runs (as other commands do), so that ``hq config set`` can
mend a config file holding a bad value.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.cli.options import OutputFormat, SummaryFormatOption
from hikyuu_qlib.cli.output import (
    cli_errors,
    display,
    emit_json,
    print_fields,
    stderr_console,
    stdout_console,
)

config_app = typer.Typer(
    help="Settings: each value and its source (env, file or default); write the config file.",
    no_args_is_help=True,
)


@config_app.command("show")
def show(fmt: SummaryFormatOption = OutputFormat.table) -> None:
    """Every setting's value and where it comes from: env (HQ_*), file ($HQ_CONFIG or
    ~/.hikyuu_qlib/config.toml) or default. Passwords in URLs are masked."""
    from hikyuu_qlib.settings_file import describe_settings

    with cli_errors(json_errors=fmt is OutputFormat.json):
        path, rows = describe_settings()
    if fmt is OutputFormat.json:
        emit_json(
            {
                "config_file": str(path),
                "config_file_exists": path.is_file(),
                "settings": {r.key: {"value": r.value, "source": r.source, "env": r.env} for r in rows},
            }
        )
        return
    table = Table(title=f"config file: {path}{'' if path.is_file() else ' (absent)'}", title_justify="left")
    for column in ("key", "value", "source", "env"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.key, display(r.value), r.source, r.env)
    stdout_console().print(table)


@config_app.command("set")
def set_(
    key: Annotated[str, typer.Argument(help="a setting's name, as hq config show lists it (e.g. source)")],
    value: Annotated[
        str, typer.Argument(help="its value: a string, a number, true/false, JSON for lists; null removes it")
    ],
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Validate a setting and write it into the config file ($HQ_CONFIG or ~/.hikyuu_qlib/config.toml);
    the file's other lines and comments stay."""
    from hikyuu_qlib.settings_file import env_name, set_setting

    with cli_errors(json_errors=fmt is OutputFormat.json):
        path, written = set_setting(key, value)
    env = env_name(key)
    overridden = env if env in {k.upper() for k in os.environ} else None
    if overridden:
        stderr_console().print(
            f"[yellow]note:[/yellow] {overridden} is set in the environment and overrides the file",
            highlight=False,
        )
    doc: dict[str, Any] = {
        "config_file": str(path),
        "key": key,
        "value": written,
        "removed": written is None,
        "overridden_by": overridden,
    }
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    print_fields(doc)


__all__ = ["config_app"]
