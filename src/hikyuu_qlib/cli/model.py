"""``hq model …``: the model registry commands (list, show, rm, promote); ``train`` and ``evaluate`` are
mounted from :mod:`hikyuu_qlib.cli.research`.

Every command takes ``--db URL`` (default: ``HQ_DATABASE_URL``, else ``sqlite:///~/.hikyuu_qlib/registry.db``)
and ``--format table|json``; with json, stdout holds exactly one JSON document. Ids print whole;
any unique prefix (case-insensitive) is accepted back.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.cli.options import DbOption, ListFormatOption, OutputFormat, SummaryFormatOption
from hikyuu_qlib.cli.output import (
    emit_json,
    guarded,
    print_fields,
    stderr_console,
    stdout_console,
)
from hikyuu_qlib.cli.remote import Remote, ServerOption, TokenOption, remote_of
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import Model, ModelStatus, ModelType

model_app = typer.Typer(
    help="Models: train, evaluate, and the registry (list, show, promote, remove).", no_args_is_help=True
)


def _registry(db: str | None) -> Any:
    """The registry at ``db``; it must exist (these commands never create one: exit 3 when it is missing)."""
    from hikyuu_qlib.app import open_cache, open_registry
    from hikyuu_qlib.cli.telemetry import current

    settings = current().settings
    # through the cache: a promote or a removal invalidates the record in every process that caches it
    return open_registry(db, settings=settings, sync=True, create=False, cache=open_cache(settings))


def _remote(server: str | None, token: str | None) -> Remote | None:
    from hikyuu_qlib.cli.telemetry import current

    return remote_of(server, token, current().settings)


def _artifacts() -> Any:
    from hikyuu_qlib.app import open_artifacts
    from hikyuu_qlib.cli.telemetry import current

    return open_artifacts(current().settings)


def _parse_tags(tags: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tags or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"invalid tag {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _when(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _number(model: Model, name: str) -> float | None:
    value = model.metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def _metric(model: Model, name: str) -> str:
    value = model.metrics.get(name)
    return f"{value:.4f}" if isinstance(value, int | float) else ""


#: The columns of ``hq model list`` (table and CSV).
LIST_COLUMNS = ("id", "name", "version", "type", "status", "created", "ic", "rank_ic")


@model_app.command("list")
@guarded
def list_models(
    status: Annotated[
        str | None, typer.Option("--status", help="created, training, trained, deployed …")
    ] = None,
    model_type: Annotated[str | None, typer.Option("--type", help="lightgbm, xgboost, linear, mlp …")] = None,
    name: Annotated[str | None, typer.Option("--name", help="models of this name")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeatable; all must hold)")
    ] = None,
    order: Annotated[str, typer.Option("--order", help="created, -created, name or -name")] = "-created",
    limit: Annotated[int, typer.Option("--limit", "-n", help="models per page (1-10000)")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="the next cursor printed by the last page")
    ] = None,
    db: DbOption = None,
    fmt: ListFormatOption = OutputFormat.table,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """One page of models, newest first; prints the cursor of the next page (on stderr)."""
    from hikyuu_qlib.domain.queries import ModelFilter, Page

    flt = ModelFilter(
        status=None if status is None else ModelStatus.parse(status),
        model_type=None if model_type is None else ModelType.parse(model_type),
        name=name,
        tags=_parse_tags(tag),
    )
    remote = _remote(server, token)
    if remote is not None:
        with remote.client() as hq:
            items, following = hq.models_page(
                status=None if flt.status is None else flt.status.value,
                model_type=None if flt.model_type is None else flt.model_type.value,
                name=name,
                tags=flt.tags,
                order=order,
                page_size=limit,
                page_token=cursor,
            )
        page = Page(items, following)
    else:
        with _registry(db) as registry:
            page = registry.find(flt, order=order, limit=limit, cursor=cursor)
    if fmt is OutputFormat.json:
        emit_json(
            {
                "rows": len(page.items),
                "models": [m.to_json() for m in page.items],
                "next_cursor": page.next_cursor,
            }
        )
        return
    if fmt is OutputFormat.csv:
        import polars as pl

        rows = {
            "id": [m.id for m in page.items],
            "name": [m.name for m in page.items],
            "version": [m.version for m in page.items],
            "type": [m.model_type.value for m in page.items],
            "status": [m.status.value for m in page.items],
            "created": [m.created_at.isoformat() for m in page.items],
            "ic": [_number(m, "ic") for m in page.items],
            "rank_ic": [_number(m, "rank_ic") for m in page.items],
        }
        schema = {c: (pl.Float64 if c in ("ic", "rank_ic") else pl.Int64 if c == "version" else pl.String)
                  for c in LIST_COLUMNS}  # fmt: skip
        sys.stdout.write(pl.DataFrame(rows, schema=schema).write_csv())
        if page.next_cursor:
            stderr_console().print(f"next cursor: {page.next_cursor}", highlight=False, soft_wrap=True)
        return
    table = Table(title=None)
    for column in LIST_COLUMNS:
        table.add_column(
            column,
            justify="right" if column in {"version", "ic", "rank_ic"} else "left",
            no_wrap=column == "id",
        )
    for m in page.items:
        table.add_row(
            m.id,
            m.name,
            str(m.version),
            m.model_type.value,
            m.status.value,
            _when(m.created_at),
            _metric(m, "ic"),
            _metric(m, "rank_ic"),
        )
    stdout_console().print(table)
    note = f"next cursor: {page.next_cursor}" if page.next_cursor else "next cursor: (none, last page)"
    stderr_console().print(note, highlight=False, soft_wrap=True)


@model_app.command("show")
@guarded
def show_model(
    model_id: Annotated[str, typer.Argument(help="a model id or a unique prefix of one")],
    top: Annotated[int, typer.Option("--top", min=1, help="features shown per importance kind")] = 20,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Everything the registry holds about one model, and its feature importance (the top features of
    each kind)."""
    from hikyuu_qlib.modelling.importance import KINDS, load_importance, summary

    remote = _remote(server, token)
    if remote is not None:
        with remote.client() as hq:
            model = hq.model(model_id)
            shown = hq.importance(model.id, top=top)  # the artifacts are the server's
    else:
        with _registry(db) as registry:
            model = registry.get(registry.resolve(model_id))
        importance = load_importance(model, _artifacts())
        shown = None if importance is None else summary(importance, top)
    doc = model.to_json()
    doc["importance"] = shown
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    print_fields({k: v for k, v in doc.items() if k != "importance"})
    if shown:
        for kind, rows in shown.items():
            table = Table(title=f"importance: {kind} ({KINDS.get(kind, kind)}), top {len(rows)}")
            table.add_column("feature")
            table.add_column(kind, justify="right")
            for row in rows:
                table.add_row(row["feature"], f"{row['value']:.6g}")
            stdout_console().print(table)


@model_app.command("rm")
@guarded
def remove_models(
    model_ids: Annotated[list[str], typer.Argument(help="model ids or unique prefixes")],
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Delete models from the registry (their artifact files are kept)."""
    remote = _remote(server, token)
    if remote is not None:
        with remote.client() as hq:
            ids = list(dict.fromkeys(hq.model(i).id for i in model_ids))
            for full in ids:
                hq.delete_model(full)
        deleted = len(ids)
    else:
        with _registry(db) as registry:
            ids = [registry.resolve(i) for i in model_ids]
            deleted = registry.delete_many(ids)
    if fmt is OutputFormat.json:
        emit_json({"deleted": deleted, "ids": ids})
        return
    for i in ids:
        sys.stdout.write(f"deleted {i}\n")


@model_app.command("promote")
@guarded
def promote_model(
    model_id: Annotated[str, typer.Argument(help="a model id or a unique prefix of one")],
    to: Annotated[
        str, typer.Option("--to", help="the target status, e.g. deployed or archived")
    ] = "deployed",
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Move a model along its lifecycle (trained → deployed → archived …); illegal moves are refused."""
    target = ModelStatus.parse(to)
    remote = _remote(server, token)
    if remote is not None:
        with remote.client() as hq:
            was, model = hq.transition(model_id, target.value)
        before = ModelStatus.parse(was)
    else:
        with _registry(db) as registry:
            full = registry.resolve(model_id)
            before = registry.get(full).status
            model = registry.transition(full, target)
    if fmt is OutputFormat.json:
        emit_json({"id": model.id, "from": before.value, "to": model.status.value, "model": model.to_json()})
        return
    sys.stdout.write(f"{model.id}: {before.value} -> {model.status.value}\n")


@model_app.command("compare")
@guarded
def compare_models(
    model_ids: Annotated[list[str], typer.Argument(help="two or more model ids (or unique prefixes)")],
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Models side by side: each segment's IC, ICIR, Rank IC, Rank ICIR and MSE, and the statistics of
    their last backtest (hq backtest run --model)."""
    from hikyuu_qlib.modelling.compare import comparison, comparison_rows

    with _registry(db) as registry:
        models = [registry.get(registry.resolve(i)) for i in model_ids]
    doc = comparison(models)
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    table = Table(title="model comparison")
    table.add_column("measure")
    for m in models:
        table.add_column(f"{m.id[-8:]}\n{m.name} v{m.version}", justify="right")
    for label, values in comparison_rows(doc):
        table.add_row(label, *values)
    stdout_console().print(table)


@model_app.command("presets")
@guarded
def list_presets(fmt: SummaryFormatOption = OutputFormat.table) -> None:
    """The training presets: family, features, parameters and the parameters --param may set."""
    from hikyuu_qlib.modelling.presets import PRESETS

    docs: list[dict[str, Any]] = [
        {
            "name": p.name,
            "model_type": p.model_type.value,
            "feature_set": p.feature_set,
            "description": p.description,
            "params": dict(p.params),
            "num_boost_round": p.num_boost_round if p.rounds else None,
            "early_stopping_rounds": p.early_stopping_rounds if p.rounds else None,
            "known_params": sorted(p.known_params()),
        }
        for p in PRESETS.values()
    ]
    if fmt is OutputFormat.json:
        emit_json({"presets": docs})
        return
    table = Table(title="presets")
    for column in ("name", "type", "description", "params"):
        table.add_column(column)
    for d in docs:
        params = ", ".join(f"{k}={v}" for k, v in d["params"].items())
        table.add_row(d["name"], d["model_type"], d["description"], params)
    stdout_console().print(table)
