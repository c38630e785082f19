"""``hq``: the entrypoint. Sub-commands live in their own modules and are mounted here."""

from __future__ import annotations

from typing import Annotated

import typer

from hikyuu_qlib.cli.backtest import backtest_app
from hikyuu_qlib.cli.data import data_app
from hikyuu_qlib.cli.demo import demo
from hikyuu_qlib.cli.interrupts import CtrlC, exit_after
from hikyuu_qlib.cli.model import model_app
from hikyuu_qlib.cli.research import mount as mount_research
from hikyuu_qlib.cli.run import run
from hikyuu_qlib.observability.logs import LogFormat, configure_logging

app = typer.Typer(
    name="hq",
    help="hikyuu-qlib: A-share research over Hikyuu and Qlib stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(backtest_app, name="backtest")
app.command("demo")(demo)
app.command("run")(run)
mount_research(app, model_app)


@app.callback()
def _root(
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
    log_format: Annotated[str, typer.Option("--log-format", help="text or json (on stderr)")] = "text",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="same as --log-level DEBUG")] = False,
) -> None:
    fmt: LogFormat = "json" if log_format == "json" else "text"
    configure_logging("DEBUG" if verbose else log_level, fmt)


def main() -> None:
    ctrl_c = CtrlC.install()
    try:
        app()  # Typer's standalone mode ends in SystemExit
    except SystemExit as done:
        exit_after(ctrl_c, done.code)
        raise
    except BaseException:  # e.g. a Rust extension's panic wrapping the interrupt
        exit_after(ctrl_c, None)
        raise
