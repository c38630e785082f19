"""Report charts drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state).

Every function takes plain frames and returns PNG bytes, so that the HTML can embed them and the
writer can save them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hikyuu_qlib.backtest.formats import percent

WIDTH, HEIGHT, DPI = 11.0, 4.0, 100
_PALETTE = {
    "strategy": "#1f6fb4",
    "gross": "#8fb8de",
    "bench": "#d2691e",
    "excess": "#2e8b57",
    "dd": "#c0392b",
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _figure(height: float = HEIGHT) -> tuple[Figure, Any]:
    fig = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def curves(daily: pl.DataFrame) -> pl.DataFrame:
    """Cumulative curves from the daily frame: net (after costs), gross, benchmark and excess."""
    has_bench = "bench_return" in daily.columns and daily["bench_return"].null_count() < daily.height
    bench = pl.col("bench_return").fill_null(0.0) if has_bench else pl.lit(0.0)
    net = (1.0 + pl.col("return") - pl.col("cost")).cum_prod()
    out = daily.select(
        "datetime",
        net.alias("net"),
        (1.0 + pl.col("return")).cum_prod().alias("gross"),
        (1.0 + bench).cum_prod().alias("bench"),
    ).with_columns(
        (pl.col("net") / pl.col("net").cum_max() - 1.0).alias("drawdown"),
        (pl.col("net") / pl.col("bench")).alias("excess"),
    )
    return (
        out
        if has_bench
        else out.with_columns(
            pl.lit(None, pl.Float64).alias("bench"), pl.lit(None, pl.Float64).alias("excess")
        )
    )


def equity_chart(daily: pl.DataFrame, benchmark: str | None = None) -> bytes:
    c = curves(daily)
    fig, ax = _figure()
    x = c["datetime"].to_numpy()
    ax.plot(x, c["net"].to_numpy(), color=_PALETTE["strategy"], lw=1.6, label="strategy (after costs)")
    ax.plot(x, c["gross"].to_numpy(), color=_PALETTE["gross"], lw=1.0, label="strategy (before costs)")
    if c["bench"].null_count() == 0:
        ax.plot(x, c["bench"].to_numpy(), color=_PALETTE["bench"], lw=1.2, label=benchmark or "benchmark")
        ax.plot(
            x,
            c["excess"].to_numpy(),
            color=_PALETTE["excess"],
            lw=1.0,
            ls="--",
            label="excess (strategy / benchmark)",
        )
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_title("Equity (growth of 1)")
    ax.legend(loc="upper left", fontsize=9)
    return _png(fig)


def drawdown_chart(daily: pl.DataFrame, max_drawdown: float | None = None) -> bytes:
    """The compounded equity's drawdown; ``max_drawdown`` (the statistics' ``max_drawdown_compound``)
    goes in the title."""
    c = curves(daily)
    fig, ax = _figure(3.0)
    x = c["datetime"].to_numpy()
    dd = c["drawdown"].to_numpy() * 100.0
    ax.fill_between(x, dd, 0.0, color=_PALETTE["dd"], alpha=0.35)
    ax.plot(x, dd, color=_PALETTE["dd"], lw=1.0)
    ax.set_ylabel("%")
    title = "Drawdown of the compounded equity"
    if max_drawdown is not None and np.isfinite(max_drawdown):
        title += f" (max_drawdown_compound {percent(max_drawdown)})"
    ax.set_title(title)
    return _png(fig)


def turnover_chart(daily: pl.DataFrame, window: int = 20) -> bytes:
    fig, ax = _figure(3.0)
    x = daily["datetime"].to_numpy()
    t = daily["turnover"].fill_null(0.0).to_numpy() * 100.0
    ax.bar(x, t, width=1.0, color="#7f8c8d", alpha=0.5, label="daily")
    rolled = daily["turnover"].fill_null(0.0).rolling_mean(window, min_samples=1).to_numpy() * 100.0
    ax.plot(x, rolled, color=_PALETTE["strategy"], lw=1.2, label=f"{window}-day mean")
    ax.set_ylabel("% of account")
    ax.set_title("Turnover")
    ax.legend(loc="upper right", fontsize=9)
    return _png(fig)


def ic_chart(ic: pl.DataFrame, window: int = 20) -> bytes:
    fig, ax = _figure(3.2)
    frame = ic.sort("datetime")
    x = frame["datetime"].to_numpy()
    for col, color in (("ic", _PALETTE["strategy"]), ("rank_ic", _PALETTE["bench"])):
        if col not in frame.columns:
            continue
        s = frame[col].cast(pl.Float64).fill_nan(None)
        ax.plot(x, s.to_numpy(), color=color, lw=0.5, alpha=0.35)
        ax.plot(
            x,
            s.rolling_mean(window, min_samples=max(1, window // 2)).to_numpy(),
            color=color,
            lw=1.5,
            label=f"{col} ({window}-day mean)",
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_title("Rolling information coefficient")
    ax.legend(loc="upper left", fontsize=9)
    return _png(fig)


def importance_chart(values: Sequence[tuple[str, float]], kind: str) -> bytes:
    """Horizontal bars of a model's top features for one importance kind, largest at the top."""
    fig, axes = _figure(max(2.5, 0.25 * len(values) + 1.0))
    names = [name for name, _ in reversed(values)]
    numbers = [value for _, value in reversed(values)]
    colors = [_PALETTE["strategy"] if v >= 0 else _PALETTE["dd"] for v in numbers]
    axes.barh(range(len(values)), numbers, color=colors)
    axes.set_yticks(range(len(values)))
    axes.set_yticklabels(names, fontsize=8)
    axes.set_title(f"Feature importance: {kind} (top {len(values)})")
    return _png(fig)


def monthly_returns(daily: pl.DataFrame) -> pl.DataFrame:
    """Compounded net returns per (year, month)."""
    return (
        daily.group_by(
            pl.col("datetime").dt.year().alias("year"), pl.col("datetime").dt.month().alias("month")
        )
        .agg(((1.0 + pl.col("return") - pl.col("cost")).product() - 1.0).alias("return"))
        .sort("year", "month")
    )


def monthly_heatmap(daily: pl.DataFrame) -> bytes:
    m = monthly_returns(daily)
    years = m["year"].unique().sort().to_list()
    grid = np.full((len(years), 12), np.nan)
    row = {y: i for i, y in enumerate(years)}
    for y, mo, r in m.iter_rows():
        grid[row[y], mo - 1] = r * 100.0
    fig = Figure(figsize=(WIDTH, 0.9 + 0.45 * max(len(years), 2)), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    finite = grid[np.isfinite(grid)]
    lim = float(np.max(np.abs(finite))) if finite.size else 1.0
    img = ax.imshow(grid, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(12), MONTHS)
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    for i in range(len(years)):
        for j in range(12):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(img, ax=ax, label="%")
    ax.set_title("Monthly returns after costs (%)")
    return _png(fig)
