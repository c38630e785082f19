"""``hq``: the entrypoint. Sub-commands live in their own modules and are mounted here."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from hikyuu_qlib.cli.backtest import backtest_app
from hikyuu_qlib.cli.cache import cache_app
from hikyuu_qlib.cli.config import config_app
from hikyuu_qlib.cli.data import data_app
from hikyuu_qlib.cli.demo import demo
from hikyuu_qlib.cli.interrupts import CtrlC, exit_after
from hikyuu_qlib.cli.jobs import jobs_app
from hikyuu_qlib.cli.model import model_app
from hikyuu_qlib.cli.output import ExitCode, emit_json
from hikyuu_qlib.cli.research import mount as mount_research
from hikyuu_qlib.cli.rolling import rolling
from hikyuu_qlib.cli.run import run
from hikyuu_qlib.cli.serve import serve, token
from hikyuu_qlib.cli.signals import signals
from hikyuu_qlib.cli.sweep import sweep
from hikyuu_qlib.cli.system import system_app
from hikyuu_qlib.cli.universe import universe_app
from hikyuu_qlib.observability.logs import LogFormat, configure_logging
from hikyuu_qlib.version import PACKAGE, package_version

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
app.add_typer(cache_app, name="cache")
app.add_typer(system_app, name="system")
data_app.add_typer(universe_app, name="universe")
app.add_typer(config_app, name="config")
app.add_typer(jobs_app, name="jobs")
app.command("demo")(demo)
app.command("run")(run)
app.command("serve")(serve)
app.command("token")(token)
app.command("rolling")(rolling)
app.command("sweep")(sweep)
app.command("signals")(signals)
mount_research(app, model_app)


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"hq ({PACKAGE}) {package_version()}\n")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
    log_format: Annotated[str, typer.Option("--log-format", help="text or json (on stderr)")] = "text",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="same as --log-level DEBUG (with tracebacks of bugs)")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="print the version and exit", callback=_show_version, is_eager=True),
    ] = False,
) -> None:
    fmt: LogFormat = "json" if log_format == "json" else "text"
    configure_logging("DEBUG" if verbose else log_level, fmt)


def command() -> Any:
    """The Click command of ``hq``, with flags shown without a ``<bool>`` metavar in the help."""
    root = typer.main.get_command(app)
    _tidy(root)
    return root


def _tidy(cmd: Any) -> None:
    for param in cmd.params:
        if getattr(param, "is_bool_flag", False) and param.metavar is None:
            param.metavar = ""
    help_option = cmd.get_help_option(typer.Context(cmd, info_name=cmd.name))
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _tidy(sub)


def wants_json(args: Sequence[str]) -> bool:
    """Whether the command line asks for ``--format json`` (so that usage errors are JSON too)."""
    for i, arg in enumerate(args):
        if arg in ("--format", "-f") and i + 1 < len(args) and args[i + 1] == "json":
            return True
        if arg in ("--format=json", "-fjson"):
            return True
    return False


def run_hq(args: Sequence[str]) -> int:
    """Run ``hq ARGS`` and return its exit code (usage errors included, as one JSON error under json)."""
    from typer import rich_utils

    try:
        result = command().main(args=list(args), prog_name="hq", standalone_mode=False)
    except typer.TyperException as exc:  # Click's usage errors: bad options, missing arguments …
        code = int(getattr(exc, "exit_code", ExitCode.INVALID_INPUT))
        if wants_json(args) and type(exc).__name__ != "NoArgsIsHelpError":
            message = " ".join(exc.format_message().split())
            emit_json({"error": {"type": "UsageError", "message": message, "exit_code": code}})
        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]  # (the help of no arguments is printed)
        return code
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        return ExitCode.FAILURE
    except BrokenPipeError:  # stdout's reader went away (``hq --help | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILURE
    return result if isinstance(result, int) else ExitCode.OK


def main() -> None:
    ctrl_c = CtrlC.install()
    try:
        code = run_hq(sys.argv[1:])
    except BaseException:  # e.g. a Rust extension's panic wrapping the interrupt
        exit_after(ctrl_c, None)
        raise
    exit_after(ctrl_c, code)
    sys.exit(code)
