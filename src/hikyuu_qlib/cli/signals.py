"""``hq signals``: BUY/SELL/HOLD signals with a strength from predictions (a file or a registered model).

The conversion and the meaning of each signal are :mod:`hikyuu_qlib.signals`'.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from hikyuu_qlib.cli.options import (
    DbOption,
    OutputFormat,
    SourceOption,
    SummaryFormatOption,
    UniverseFileOption,
)
from hikyuu_qlib.cli.output import (
    SUFFIX_FORMATS,
    check_out_file,
    emit_json,
    exit_if_partial,
    guarded,
    print_fields,
    write_frame,
)
from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.signals import SignalMethod, SignalRule, signal_counts, to_signals

log = logging.getLogger("hikyuu_qlib.cli")

#: The parameter each method takes and its default.
DEFAULTS: dict[SignalMethod, tuple[str, float]] = {
    SignalMethod.topk: ("k", 50),
    SignalMethod.threshold: ("threshold", 0.0),
    SignalMethod.percentile: ("pct", 0.1),
}

MethodOption = Annotated[
    SignalMethod,
    typer.Option(
        "--method",
        help="topk: the k best scores each date; threshold: scores above X; percentile: the best fraction P",
    ),
]
KOption = Annotated[int | None, typer.Option("--k", min=1, help="topk: codes selected per date (default 50)")]
ThresholdOption = Annotated[
    float | None, typer.Option("--threshold", help="threshold: select scores above X (default 0)")
]
PctOption = Annotated[
    float | None,
    typer.Option(
        "--pct", help="percentile: the best fraction P of each date's codes, 0 < P <= 1 (default 0.1)"
    ),
]


def signal_rule(
    method: SignalMethod, k: int | None, threshold: float | None, pct: float | None
) -> SignalRule:
    """The rule of the command line: the method's own option or its default; another method's option
    is refused."""
    given = {"k": k, "threshold": threshold, "pct": pct}
    own, default = DEFAULTS[method]
    foreign = [f"--{name}" for name, value in given.items() if value is not None and name != own]
    if foreign:
        raise InvalidInputError(f"--method {method.value} takes --{own}, not {', '.join(foreign)}")
    value = given[own]
    chosen = float(default if value is None else value)
    if method is SignalMethod.topk:
        return SignalRule.topk(int(chosen) if chosen.is_integer() else chosen)  # type: ignore[arg-type]
    if method is SignalMethod.threshold:
        return SignalRule.above(chosen)
    return SignalRule.percentile(chosen)


@guarded
def signals(
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.csv, FILE.json or FILE.parquet")],
    predictions: Annotated[
        Path | None, typer.Argument(help="predictions: parquet or csv with datetime, code, score")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="a registered model id (or prefix) to predict with")
    ] = None,
    source: SourceOption = None,
    universe: Annotated[
        str | None, typer.Option("--universe", "-u", help="with --model; default: the model's")
    ] = None,
    universe_file: UniverseFileOption = None,
    start: Annotated[
        str | None, typer.Option(help="first date (default: the model's test segment's)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="last date (default: the model's test segment's)")] = None,
    method: MethodOption = SignalMethod.topk,
    k: KOption = None,
    threshold: ThresholdOption = None,
    pct: PctOption = None,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Turn scores into BUY (enters the selection), HOLD (stays), SELL (leaves) per code and date, with a
    strength in [0, 1] (the score's percentile rank on the date; 1 − it for a SELL)."""
    from hikyuu_qlib.cli.backtest import read_predictions

    kind = check_out_file(out, {suffix: fmt.value for suffix, fmt in SUFFIX_FORMATS.items()})
    rule = signal_rule(method, k, threshold, pct)
    if (predictions is None) == (model is None):
        raise InvalidInputError("give a PREDICTIONS file or --model ID (one of them)")
    errors: dict[str, BaseException] = {}
    doc: dict[str, Any] = {"method": rule.describe(), "model_id": None, "source": None}
    succeeded = 0
    if predictions is not None:
        if universe or universe_file:
            raise InvalidInputError("--universe and --universe-file choose what --model predicts")
        preds = read_predictions(predictions)
        if start or end:
            span = DateRange.of(start, end)
            preds = preds.filter(pl.col("datetime").is_between(span.start, span.end))
        frame = to_signals(preds, rule)
        doc["predictions"] = str(predictions)
    else:
        assert model is not None
        frame, errors, succeeded, doc = _model_signals(
            model, rule, source, universe, universe_file, start, end, db, doc
        )
    write_frame(frame, OutputFormat(str(kind)), out)
    dates = frame["datetime"].unique()
    doc.update(
        {
            "out": str(out),
            "rows": frame.height,
            "codes": frame["code"].n_unique(),
            "dates": dates.len(),
            "first": dates.min(),
            "last": dates.max(),
            "signals": signal_counts(frame),
            "errors": {code: str(err) for code, err in sorted(errors.items())},
        }
    )
    if fmt is OutputFormat.json:
        emit_json(doc)
    else:
        print_fields(doc)
    if model is not None:
        exit_if_partial(errors, succeeded)


def _model_signals(
    model: str,
    rule: SignalRule,
    source: str | None,
    universe: str | None,
    universe_file: Path | None,
    start: str | None,
    end: str | None,
    db: str | None,
    doc: dict[str, Any],
) -> tuple[pl.DataFrame, dict[str, BaseException], int, dict[str, Any]]:
    from hikyuu_qlib.cli.telemetry import current
    from hikyuu_qlib.modelling.service import model_signals
    from hikyuu_qlib.research import ResearchContext

    command = current()
    with ResearchContext.open(
        source, settings=command.settings, db=db, create_registry=False, telemetry=command.telemetry
    ) as ctx:
        model_id = ctx.resolve_model(model)
        record = ctx.registry.get(model_id)
        dates = ctx.model_dates(record, start, end)
        ctx.use_model_source(record)
        members = ctx.model_universe(record, universe, dates, file=universe_file)
        result = model_signals(
            model_id, rule, predictor=ctx.predictor, store=ctx.features, universe=members, dates=dates,
            cache=ctx.cache,
        )  # fmt: skip
        doc = {**doc, "model_id": model_id, "source": ctx.source, "universe": members.name}
    succeeded = len(members.members_between(dates)) - len(result.errors)
    return result.frame, result.errors, succeeded, doc
