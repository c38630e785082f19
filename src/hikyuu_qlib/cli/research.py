"""Research commands: ``hq model train``, ``hq model evaluate`` and ``hq predict``.

Mounted by :func:`mount` (``hq model train|evaluate`` on the model app, ``hq predict`` on the root).
With ``--format json`` stdout holds exactly one JSON document; logs and progress go to stderr.
Features and predictions go through the settings' cache (``hq cache``; ``--no-cache`` skips it).
"""

from __future__ import annotations

import logging
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.cli.options import (
    DbOption,
    MemoryBudgetOption,
    MetricsFileOption,
    OutputFormat,
    SourceOption,
    SummaryFormatOption,
    UniverseFileOption,
)
from hikyuu_qlib.cli.output import (
    check_out_file,
    emit_json,
    exit_if_partial,
    guarded,
    stderr_console,
    stdout_console,
    writing,
)
from hikyuu_qlib.cli.progress import progress_bar
from hikyuu_qlib.cli.remote import (
    ServerOption,
    TokenOption,
    day,
    refuse_local_options,
    remote_of,
    run_job,
)
from hikyuu_qlib.domain import DateRange, Segments
from hikyuu_qlib.domain.errors import InvalidInputError, LoadErrors

if TYPE_CHECKING:
    from hikyuu_qlib.ports import FeatureSource
    from hikyuu_qlib.research import ResearchContext

log = logging.getLogger("hikyuu_qlib.cli.research")


#: The universe ``hq model train`` trains on without --universe or --universe-file.
DEFAULT_UNIVERSE = "csi300"

#: Prediction files: extension → format.
PREDICTION_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}

NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="compute features and predictions without the cache")
]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", min=1, help="LightGBM threads (default: all cores)")
]


def mount(root: typer.Typer, model: typer.Typer) -> None:
    """Add ``train`` and ``evaluate`` to ``hq model`` and ``predict`` to ``hq``."""
    model.command("train")(train)
    model.command("evaluate")(evaluate)
    root.command("predict")(predict)


# --- wiring --------------------------------------------------------------------------------------------


def _context(source: str | None, db: str | None, *, create_registry: bool = True) -> ResearchContext:
    """The command's research context, over the settings read once for the command, with its telemetry."""
    from hikyuu_qlib.cli.telemetry import current
    from hikyuu_qlib.research import ResearchContext

    command = current()
    return ResearchContext.open(
        source,
        settings=command.settings,
        db=db,
        create_registry=create_registry,
        telemetry=command.telemetry,
    )


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    names = ("ic", "icir", "rank_ic", "rank_icir", "mse_learn_label", "mse_raw_label", "days", "rows")
    table.add_column("segment")
    for name in names:
        table.add_column(name, justify="right")
    for segment in ("train", "valid", "test", "all"):
        values = metrics.get(segment)
        if isinstance(values, dict):
            table.add_row(segment, *(_num(values.get(n)) for n in names))
    return table


def _num(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "NaN"
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    return "" if value is None else str(value)


# --- commands ------------------------------------------------------------------------------------------


ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        help="override a preset parameter, KEY=VALUE (repeatable); unknown keys are refused "
        "(hq model presets lists each preset's)",
    ),
]


@guarded(job="model_train")
def train(
    train_span: Annotated[str, typer.Option("--train", help="train segment START:END")],
    valid_span: Annotated[str | None, typer.Option("--valid", help="valid segment (early stopping)")] = None,
    test_span: Annotated[str | None, typer.Option("--test", help="test segment")] = None,
    source: SourceOption = None,
    universe: Annotated[
        str | None, typer.Option("--universe", "-u", help="universe name or CODE,CODE,… (default csi300)")
    ] = None,
    universe_file: UniverseFileOption = None,
    factors: Annotated[str, typer.Option("--factors", help="factor set")] = "alpha158",
    preset: Annotated[
        str, typer.Option("--preset", help="training preset (hq model presets)")
    ] = "qlib-lgb-alpha158",
    name: Annotated[str | None, typer.Option("--name", help="model name (default: PRESET-UNIVERSE)")] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="random seed (training is deterministic for it)")
    ] = 0,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            help="train with N seeds (SEED … SEED+N-1), register each, report each metric as mean ± std",
        ),
    ] = 1,
    param: ParamOption = None,
    features_file: Annotated[
        Path | None,
        typer.Option(
            "--features",
            help="train on your own FILE.parquet (datetime, code, features…, the --label column) "
            "instead of a source's factors",
        ),
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="the label column of --features")] = None,
    threads: ThreadsOption = None,
    rounds: Annotated[
        int | None, typer.Option("--num-boost-round", min=1, help="override the preset's rounds")
    ] = None,
    no_cache: NoCacheOption = False,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    metrics_file: MetricsFileOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    memory_budget: MemoryBudgetOption = None,
) -> None:
    """Train a model on a universe and register it with its metrics (IC, ICIR, Rank IC, MSE per segment).

    With --seeds N, N models are trained and registered (tag seed_group) and the quality is the mean ±
    std of each metric over them. With --server (or HQ_SERVER) the server trains it as a train job (a
    write token) and the command waits for it (Ctrl-C cancels the job). A universe that does not fit the
    memory budget in memory is computed and trained from date blocks on disk (the same model).
    """
    from hikyuu_qlib.cli.telemetry import current
    from hikyuu_qlib.memory import MemoryBudget
    from hikyuu_qlib.modelling.presets import get_preset, parse_param
    from hikyuu_qlib.modelling.quality import over_seeds
    from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
    from hikyuu_qlib.modelling.streaming import Bounded
    from hikyuu_qlib.research import UNIVERSE_FILE_TAG

    chosen = get_preset(preset)
    params = dict(parse_param(item) for item in param or [])
    chosen.check_params(params)
    if features_file is None and label is not None:
        raise InvalidInputError("--label names the label column of --features FILE.parquet")
    if features_file is not None and label is None:
        raise InvalidInputError("--features needs --label COL (the label column of the file)")
    if universe and universe_file is not None:
        raise InvalidInputError("--universe and --universe-file are mutually exclusive: give one")
    if features_file is not None and (universe or universe_file is not None):
        raise InvalidInputError(
            "--features trains on the file's rows: not with --universe or --universe-file"
        )
    if features_file is None and factors != chosen.feature_set:
        raise InvalidInputError(f"preset {preset} trains on {chosen.feature_set}, not {factors!r}")
    segments = Segments.parse(train_span, valid_span, test_span)
    remote = remote_of(server, token, current().settings)
    if remote is not None:
        refuse_local_options(
            source=source,
            no_cache=no_cache,
            metrics_file=metrics_file,
            features_file=features_file,
            universe_file=universe_file,
            memory_budget=memory_budget,
        )
        if seeds != 1:
            raise InvalidInputError("--seeds: only for a local run (a server job trains one model)")
        body = {
            "universe": universe or DEFAULT_UNIVERSE,
            "factors": factors,
            "model": {"preset": preset, "seed": seed, "num_threads": threads, "name": name, "params": params},
            "segments": {
                k: v for k, v in (("train", train_span), ("valid", valid_span), ("test", test_span)) if v
            },
            "num_boost_round": rounds,
        }
        with remote.client() as hq:
            done = run_job(hq, "train", body, fmt, remote.url)
            result = done.result or {}
            model = hq.model(str(result["model_id"]))
        remote_doc = {
            "model": model.to_json(),
            "metrics": result.get("metrics"),
            "best_iteration": result.get("best_iteration"),
            "rounds": result.get("rounds"),
            "timings": result.get("timings"),
            "job_id": done.id,
        }
        if fmt is OutputFormat.json:
            emit_json(remote_doc)
            return
        metrics = result.get("metrics") or {}
        stdout_console().print(_metrics_table(metrics, f"model {model.id} ({model.name} v{model.version})"))
        return
    budget = MemoryBudget.of(memory_budget if memory_budget is not None else current().settings.memory_budget)
    frame = None
    if features_file is not None:
        from hikyuu_qlib.modelling.features_file import read_features_file

        assert label is not None
        frame = read_features_file(features_file, label)
    outcomes: list[Any] = []
    store: FeatureSource | None = None
    with _context(source, db) as ctx:
        bounded = Bounded(budget, ctx.settings.cache_disk_dir, reuse=not no_cache)
        if frame is not None:
            from hikyuu_qlib.factors.universe import Universe

            assert features_file is not None
            members = Universe.from_codes(
                frame.get_column("code").unique().to_list(), name=f"file:{features_file.name}"
            )
            store = None
            where = str(features_file)
            extra_tags = {"source": f"file:{features_file.resolve()}", "label_column": str(label)}
            feature_set: str | None = f"file:{features_file.name}"
        else:
            members = ctx.universe(universe or DEFAULT_UNIVERSE, segments.span(), file=universe_file)
            store = ctx.features
            where = ctx.source
            feature_set = None
            # predict and evaluate default to the model's universe: the file, found again by its path
            extra_tags = {} if universe_file is None else {UNIVERSE_FILE_TAG: str(universe_file.resolve())}
        group = _seed_group() if seeds > 1 else None
        sharing: AbstractContextManager[None] = bounded.sharing_rows() if seeds > 1 else nullcontext()
        with sharing:  # bounded: the seeds' trainings write the row files once
            for k in range(seeds):
                spec = TrainSpec(
                    name or f"{preset}-{members.name}",
                    segments,
                    preset=preset,
                    seed=seed + k,
                    num_threads=threads,
                    num_boost_round=rounds,
                    params=params,
                    tags={**extra_tags, **({"seed_group": group} if group else {})},
                    feature_set=feature_set,
                )
                stderr_console().print(
                    f"training {spec.name} on {members.name} ({where}), seed {spec.seed}", highlight=False
                )
                with progress_bar(
                    "boosting" if chosen.rounds else "training",
                    enabled=fmt is OutputFormat.table or sys.stderr.isatty(),
                ) as progress:
                    try:
                        outcomes.append(
                            train_and_register(
                                spec,
                                store=store,
                                universe=members,
                                registry=ctx.registry,
                                artifacts=ctx.artifacts,
                                cache=None if no_cache else ctx.cache,
                                progress=progress,
                                frame=frame,
                                bounded=bounded,
                            )
                        )
                    except LoadErrors:
                        stderr_console().print(
                            "training needs every member of the universe: repair the failing codes, or name the "
                            "others with --universe CODE,CODE,…",
                            highlight=False,
                        )
                        raise
    memory = {
        "budget_mb": round(budget.bytes / 2**20, 1),
        "path": "bounded" if bounded.used else "in_memory",
        "peak_rss_mb": bounded.peaks.to_json(),
    }
    docs = [
        {
            "model": o.model.to_json(),
            "metrics": o.metrics,
            "best_iteration": o.result.best_iteration,
            "rounds": o.result.rounds,
            "timings": o.timings,
            "memory": memory,
        }
        for o in outcomes
    ]
    quality = over_seeds([o.metrics for o in outcomes]) if seeds > 1 else None
    if fmt is OutputFormat.json:
        if quality is None:
            emit_json(docs[0])
        else:
            emit_json(
                {
                    "seeds": [seed + k for k in range(seeds)],
                    "seed_group": group,
                    "quality": quality,
                    "models": docs,
                }
            )
        return
    for outcome in outcomes:
        stdout_console().print(
            _metrics_table(
                outcome.metrics, f"model {outcome.model.id} ({outcome.model.name} v{outcome.model.version})"
            )
        )
        rounds_text = (
            f"{outcome.result.rounds} rounds run, best iteration {outcome.result.best_iteration}; "
            if outcome.result.rounds is not None
            else ""
        )
        sys.stdout.write(
            f"{rounds_text}features {outcome.timings['features_s']:.1f}s, train {outcome.timings['train_s']:.1f}s\n"
        )
    if quality is not None:
        stdout_console().print(_quality_table(quality, f"quality over {seeds} seeds (mean ± std)"))


def _seed_group() -> str:
    from ulid import ULID

    return str(ULID())


def _quality_table(quality: dict[str, Any], title: str) -> Table:
    from hikyuu_qlib.modelling.quality import SEED_METRICS, format_mean_std

    table = Table(title=title)
    table.add_column("segment")
    for metric in SEED_METRICS:
        table.add_column(metric, justify="right")
    for segment, cells in quality.items():
        table.add_row(segment, *(format_mean_std(cells[m]) for m in SEED_METRICS))
    return table


@guarded
def evaluate(
    model_id: Annotated[str, typer.Argument(help="a model id or a unique prefix of one")],
    source: SourceOption = None,
    universe: Annotated[str | None, typer.Option("--universe", "-u", help="default: the model's")] = None,
    universe_file: UniverseFileOption = None,
    start: Annotated[str | None, typer.Option("--start", help="default: the model's test segment")] = None,
    end: Annotated[str | None, typer.Option("--end", help="default: the model's test segment")] = None,
    daily: Annotated[bool, typer.Option("--daily", help="include the IC of every day")] = False,
    no_cache: NoCacheOption = False,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    memory_budget: MemoryBudgetOption = None,
) -> None:
    """An IC report of a registered model: IC, ICIR, Rank IC, Rank ICIR overall and per year."""
    from hikyuu_qlib.memory import MemoryBudget
    from hikyuu_qlib.modelling import service
    from hikyuu_qlib.modelling.streaming import Bounded

    with _context(source, db, create_registry=False) as ctx:
        full = ctx.resolve_model(model_id)
        record = ctx.registry.get(full)
        _refuse_file_model(record, "evaluate")
        spans = record.segments
        default = spans.get("test") or next(iter(spans.values()), None)
        if (start is None or end is None) and default is None:
            raise InvalidInputError("the model has no segments: give --start and --end")
        dates = DateRange.of(start or default.start, end or default.end)  # type: ignore[union-attr]
        ctx.use_model_source(record)
        members = ctx.model_universe(record, universe, dates, file=universe_file)
        report = service.evaluate(
            full,
            predictor=ctx.predictor,
            store=ctx.features,
            universe=members,
            dates=dates,
            cache=None if no_cache else ctx.cache,
            bounded=Bounded(
                MemoryBudget.of(memory_budget or ctx.settings.memory_budget),
                ctx.settings.cache_disk_dir,
                reuse=not no_cache,
            ),
        )
    doc: dict[str, Any] = {
        "id": full,
        "name": record.name,
        "universe": members.name,
        "dates": str(dates),
        "summary": report.summary,
        "yearly": report.yearly.to_dicts(),
    }
    if daily:
        doc["daily"] = report.daily.to_dicts()
    doc["errors"] = {code: str(err) for code, err in sorted(report.errors.items())}
    succeeded = len(members.members_between(dates)) - len(report.errors)
    if fmt is OutputFormat.json:
        emit_json(doc)
        exit_if_partial(report.errors, succeeded)  # each failing code was logged once
        return
    console = stdout_console()
    console.print(_metrics_table({"all": report.summary}, f"IC report {full} {dates}"))
    table = Table(title="per year")
    for column in report.yearly.columns:
        table.add_column(column, justify="right")
    for row in report.yearly.iter_rows():
        table.add_row(*(_num(v) for v in row))
    console.print(table)
    exit_if_partial(report.errors, succeeded)


def _refuse_file_model(record: Any, what: str) -> None:
    if record.feature_set.startswith("file:"):
        raise InvalidInputError(
            f"model {record.id} was trained on a features file ({record.feature_set[5:]}), not on a source's "
            f"factors: {what} it with --features FILE.parquet holding the same feature columns"
        )


@guarded
def predict(
    model_id: Annotated[str, typer.Argument(help="a model id or a unique prefix of one")],
    start: Annotated[str, typer.Option("--start", help="first date")],
    end: Annotated[str, typer.Option("--end", help="last date")],
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.parquet (or .pq) or FILE.csv")],
    source: SourceOption = None,
    universe: Annotated[str | None, typer.Option("--universe", "-u", help="default: the model's")] = None,
    universe_file: UniverseFileOption = None,
    qlib_form: Annotated[
        bool,
        typer.Option(
            "--qlib-form",
            help="Parquet of Qlib's pandas form: MultiIndex (datetime, instrument), column score",
        ),
    ] = False,
    features_file: Annotated[
        Path | None,
        typer.Option("--features", help="score the rows of your FILE.parquet (a features-file model)"),
    ] = None,
    no_cache: NoCacheOption = False,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    server: ServerOption = None,
    token: TokenOption = None,
    memory_budget: MemoryBudgetOption = None,
) -> None:
    """Predict a universe over a date range with a registered model; writes (datetime, code, score).

    Codes that fail to load are left out and reported; the others are predicted (exit 5). Over the
    memory budget the scores are written block by block (the same codes left out). With --server
    (or HQ_SERVER) the server predicts (its model LRU and cache) and the scores are written here.
    """
    from hikyuu_qlib.cli.telemetry import current
    from hikyuu_qlib.memory import MemoryBudget
    from hikyuu_qlib.modelling import service
    from hikyuu_qlib.modelling.predictor import write_predictions
    from hikyuu_qlib.modelling.qlib_form import to_qlib
    from hikyuu_qlib.modelling.streaming import Bounded, write_predictions_blocks

    kind = check_out_file(out, PREDICTION_SUFFIXES)
    if qlib_form and kind != "parquet":
        raise InvalidInputError("--qlib-form writes Parquet: use an --out FILE.parquet")
    dates = DateRange.of(start, end)
    remote = remote_of(server, token, current().settings)
    if features_file is not None and (universe or universe_file is not None):
        raise InvalidInputError("--features scores the file's rows: not with --universe or --universe-file")
    if features_file is not None:
        if remote is not None:
            refuse_local_options(features_file=features_file)
        _predict_file(model_id, features_file, dates, out, kind, db, fmt)
        return
    if remote is not None:
        refuse_local_options(
            source=source, no_cache=no_cache, memory_budget=memory_budget, universe_file=universe_file
        )
        with remote.client() as hq:
            served = hq.predict(
                model_id, start=day(start, "start date"), end=day(end, "end date"), universe=universe
            )
        full, frame = served.model_id, served.frame
        errors: dict[str, BaseException] = dict(served.errors)
        succeeded = frame["code"].n_unique()  # the members the server predicted
    else:
        with _context(source, db, create_registry=False) as ctx:
            full = ctx.resolve_model(model_id)
            record = ctx.registry.get(full)
            _refuse_file_model(record, "predict")
            ctx.use_model_source(record)
            members = ctx.model_universe(record, universe, dates, file=universe_file)
            bounded = Bounded(
                MemoryBudget.of(memory_budget or ctx.settings.memory_budget),
                ctx.settings.cache_disk_dir,
                reuse=not no_cache,
            )
            if kind == "parquet" and not qlib_form and not bounded.fits(ctx.features, members, dates):
                loaded = ctx.predictor.load(full)
                blocks = bounded.features(
                    ctx.features, members, dates, record.feature_set or "alpha158", label=False,
                    skip_failed=True,
                )  # fmt: skip
                with writing(out):
                    rows = write_predictions_blocks(loaded.score, blocks, dates, out)
                import polars as pl

                codes = pl.scan_parquet(out).select(pl.col("code").n_unique()).collect().item()
                failed = dict(blocks.errors)
                doc = {"id": full, "rows": rows, "codes": codes, "dates": str(dates), "out": str(out),
                       "format": "parquet",
                       "errors": {code: str(err) for code, err in sorted(failed.items())}}  # fmt: skip
                if fmt is OutputFormat.json:
                    emit_json(doc)
                else:
                    sys.stdout.write(
                        f"wrote {rows} predictions ({codes} codes, {dates}) to {out} [parquet]\n"
                    )
                exit_if_partial(failed, len(members.members_between(dates)) - len(failed))
                return
            result = service.predict_partial(
                full,
                predictor=ctx.predictor,
                store=ctx.features,
                universe=members,
                dates=dates,
                cache=None if no_cache else ctx.cache,
            )
            frame, errors = result.frame, dict(result.errors)
        succeeded = len(members.members_between(dates)) - len(errors)
    with writing(out):
        if qlib_form:
            to_qlib(frame).to_frame().to_parquet(out)
            written = "parquet (qlib form)"
        else:
            written = write_predictions(frame, str(out))
    doc = {
        "id": full,
        "rows": frame.height,
        "codes": frame["code"].n_unique(),
        "dates": str(dates),
        "out": str(out),
        "format": written,
        "errors": {code: str(err) for code, err in sorted(errors.items())},
    }
    if fmt is OutputFormat.json:
        emit_json(doc)
    else:
        sys.stdout.write(
            f"wrote {frame.height} predictions ({doc['codes']} codes, {dates}) to {out} [{written}]\n"
        )
    exit_if_partial(errors, succeeded)  # each failing code was logged once


def _predict_file(
    model_id: str,
    path: Path,
    dates: DateRange,
    out: Path,
    kind: str | None,
    db: str | None,
    fmt: OutputFormat,
) -> None:
    """``hq predict --features FILE``: the model's scores for the file's rows within ``dates``."""
    import polars as pl

    from hikyuu_qlib.modelling.features_file import read_features_file
    from hikyuu_qlib.modelling.predictor import write_predictions

    with _context(None, db, create_registry=False) as ctx:
        full = ctx.resolve_model(model_id)
        label = ctx.registry.get(full).tags.get("label_column")
        if label is not None and label not in pl.read_parquet_schema(path):
            label = None  # rows to score, without the label
        frame = read_features_file(path, label)
        frame = frame.filter(pl.col("datetime").is_between(dates.start, dates.end))
        scores = ctx.predictor.predict_frame(full, frame)
    with writing(out):
        written = write_predictions(scores, str(out), kind)
    doc = {"id": full, "rows": scores.height, "codes": scores["code"].n_unique(), "dates": str(dates),
           "out": str(out), "format": written, "errors": {}}  # fmt: skip
    if fmt is OutputFormat.json:
        emit_json(doc)
    else:
        sys.stdout.write(
            f"wrote {scores.height} predictions ({doc['codes']} codes, {dates}) to {out} [{written}]\n"
        )
