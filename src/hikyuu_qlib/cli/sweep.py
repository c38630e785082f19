"""``hq sweep FILE.yaml --param NAME=V1,V2 …``: train several configurations and rank them on the valid
segment (see :mod:`hikyuu_qlib.workflow.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.cli.options import DbOption, ExecutorOption, OutputFormat, SummaryFormatOption, WorkersOption
from hikyuu_qlib.cli.output import check_out_dir, emit_json, guarded, stdout_console


@guarded
def sweep(
    workflow: Annotated[Path, typer.Argument(help="the workflow file (YAML)")],
    param: Annotated[
        list[str],
        typer.Option(
            "--param",
            "-p",
            help="NAME=V1,V2,… : a LightGBM parameter, seed, or a backtest "
            "parameter (topk, n_drop, open_cost, close_cost, min_cost); repeat it",
        ),
    ],
    search: Annotated[str, typer.Option("--search", help="grid (every combination) or random")] = "grid",
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="random search: how many")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="random search: the draw's seed")] = 0,
    select: Annotated[
        str, typer.Option("--select", help="rank by valid.ic, valid.rank_ic, valid.ir or valid.excess_return")
    ] = "valid.ic",
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="outputs root (default: the file's outputs.dir)")
    ] = None,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Train each configuration, register it (tagged with the sweep id) and print a leaderboard."""
    from hikyuu_qlib.domain import InvalidInputError
    from hikyuu_qlib.executors import open_executor
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import load_settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.sweep import parse_param, run_sweep
    from hikyuu_qlib.workflow.tasks import task_threads

    if search not in ("grid", "random"):
        raise InvalidInputError(f"--search {search!r}: expected grid or random")
    if out is not None:
        check_out_dir(out)
    grid: dict[str, Any] = {}
    for text in param:
        name, values = parse_param(text)
        if name in grid:
            raise InvalidInputError(f"--param {name} given twice")
        grid[name] = values
    config = load_workflow(workflow)
    with ResearchContext.open(config.source, settings=load_settings(), db=db) as ctx:
        pool = open_executor(
            executor, registry_url=ctx.registry_url, threads=task_threads(config), workers=workers
        )
        try:
            result = run_sweep(
                config, ctx, pool, grid, search=search,  # type: ignore[arg-type]
                trials=trials, seed=seed, select=select, out_root=out,
            )  # fmt: skip
        finally:
            pool.close()
    doc = result.to_json()
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    table = Table(title=f"sweep {doc['sweep_id']}: ranked by {doc['select']} (valid only; test reported)")
    for column in ("rank", "trial", "params", "valid ic", "valid rank_ic", "valid ir", "test ic",
                   "test rank_ic", "test ir", "model"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("params", "model") else "right")
    for row in doc["leaderboard"]:
        table.add_row(
            str(row["rank"]), str(row["trial"]), " ".join(f"{k}={v}" for k, v in row["params"].items()),
            *(_num(row[s][f]) for s in ("valid", "test") for f in ("ic", "rank_ic", "ir")),
            row["model_id"],
        )  # fmt: skip
    stdout_console().print(table)
    stdout_console().print(f"outputs: {doc['out_dir']}")


def _num(value: Any) -> str:
    return "" if not isinstance(value, int | float) else f"{value:.4f}"
