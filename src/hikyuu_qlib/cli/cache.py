"""``hq cache …``: what the cache holds (stats), emptying it (clear) and filling it for a workflow (warm).

The cache is what the settings describe (:func:`hikyuu_qlib.app.open_cache`): L1 in each process's
memory, L2 in Redis when ``HQ_CACHE_URL`` is set, L3 on disk under ``HQ_CACHE_DIR`` (default
``~/.hikyuu_qlib/cache``). Every command accepts ``--format json`` (one document on stdout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.cli.options import DbOption, OutputFormat, SummaryFormatOption
from hikyuu_qlib.cli.output import emit_json, guarded, print_fields, stdout_console
from hikyuu_qlib.domain.cache import Tier
from hikyuu_qlib.domain.errors import HQError

cache_app = typer.Typer(
    help="The cache: hits, misses and bytes per tier (stats), clear it, warm it for a workflow.",
    no_args_is_help=True,
)

TierOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tier",
        "-t",
        help="l1 (memory of this process), l2 (redis) or l3 (disk); repeat for several (default: all)",
    ),
]


class CacheUnavailableError(HQError):
    """A tier the command must reach is unreachable (Redis down)."""


def _settings_doc(settings: Any) -> dict[str, Any]:
    from hikyuu_qlib.observability.redact import mask_url

    return {
        "cache_url": None if settings.cache_url is None else mask_url(settings.cache_url),
        "key_prefix": settings.cache_key_prefix,
        "ttl_s": settings.cache_ttl_s,
        "memory_bytes": settings.cache_memory_bytes,
        "disk_bytes": settings.cache_disk_bytes,
        "disk_dir": str(settings.cache_disk_dir),
        "redis_max_value_bytes": settings.cache_redis_max_value_bytes,
    }


@cache_app.command("stats")
@guarded
def stats(fmt: SummaryFormatOption = OutputFormat.table) -> None:
    """Hits, misses and writes per tier (of every process that used this disk cache), and what each tier
    holds now."""
    from hikyuu_qlib.app import open_cache
    from hikyuu_qlib.settings import load_settings

    settings = load_settings()
    cache = open_cache(settings)
    try:
        counters = cache.stored_counters()
        usage = cache.usage()
    finally:
        cache.close()
    doc = {
        "counters": counters.to_json(),
        "tiers": [u.to_json() for u in usage],
        "settings": _settings_doc(settings),
    }
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    table = Table(title="cache tiers")
    columns = (
        "tier",
        "kind",
        "available",
        "entries",
        "bytes",
        "max bytes",
        "hits",
        "misses",
        "writes",
        "corrupt",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("tier", "kind", "available") else "right")
    for u in usage:
        c = counters.tiers[u.tier]
        table.add_row(
            u.tier.value,
            u.tier.label,
            "yes" if u.available else f"no ({u.detail})",
            str(u.entries),
            f"{u.bytes:,}",
            "-" if u.max_bytes is None else f"{u.max_bytes:,}",
            str(c.hits),
            str(c.misses),
            str(c.writes),
            str(c.corrupt),
        )
    stdout_console().print(table)
    summary = counters.to_json()
    print_fields({k: summary[k] for k in ("requests", "hits", "hit_ratio", "computed", "shared")})


@cache_app.command("clear")
@guarded
def clear(tier: TierOption = None, fmt: SummaryFormatOption = OutputFormat.table) -> None:
    """Delete the cached values of the given tiers (default: all). L1 lives in each process's memory:
    clearing it here empties only this process's, which is always empty."""
    from hikyuu_qlib.app import open_cache
    from hikyuu_qlib.settings import load_settings

    wanted = {Tier.parse(t) for t in tier} if tier else set(Tier)
    cache = open_cache(load_settings())
    try:
        cleared = cache.clear(wanted)
    finally:
        cache.close()
    if Tier.REDIS in wanted and cache.redis is not None and Tier.REDIS not in cleared:
        raise CacheUnavailableError("the Redis cache tier is unreachable: nothing was cleared there")
    doc = {
        "cleared": {t.value: n for t, n in cleared.items()},
        "off": sorted(t.value for t in wanted if t not in cleared),
    }
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    print_fields(doc)


@cache_app.command("warm")
@guarded
def warm(
    workflow: Annotated[Path, typer.Argument(help="the workflow file (YAML) whose features to build")],
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Build the feature frames a workflow's run reads (training and prediction) into the cache."""
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import load_settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.warm import warm_workflow

    config = load_workflow(workflow)
    with ResearchContext.open(config.source, settings=load_settings(), db=db) as ctx:
        doc = warm_workflow(config, ctx)
        doc["counters"] = ctx.cache.counters().to_json()
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    table = Table(title=f"warmed {workflow}")
    for column in ("frame", "dates", "rows", "columns", "state", "seconds"):
        table.add_column(column)
    for frame in doc["frames"]:
        table.add_row(*(str(frame[c]) for c in ("frame", "dates", "rows", "columns", "state", "seconds")))
    stdout_console().print(table)
