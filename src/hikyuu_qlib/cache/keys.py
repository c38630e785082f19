"""The key of every cached operation, built from its typed request, field by field.

Each builder names its operation, schema version and tiers in one place. Bump a schema constant when
the value an operation returns changes shape or meaning: older values then sit under other keys (and
their headers no longer match), so they are never served.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from hikyuu_qlib.domain import Adjust, DateRange, KType, Market, StockType
from hikyuu_qlib.domain.cache import ALL_TIERS, CacheKey, Tier

#: 2: a Qlib store that keeps ``$volume`` as traded serves it as the traded shares (it served ``$volume × $factor``).
BARS_SCHEMA = 2
STOCKS_SCHEMA = 1
FEATURES_SCHEMA = 1
RECORD_SCHEMA = 1
PREDICTION_SCHEMA = 1
BOOSTER_SCHEMA = 1

#: Bar queries and stock lists: small enough for memory and Redis; the store itself is the disk copy.
SHARED = frozenset({Tier.MEMORY, Tier.REDIS})
MEMORY_ONLY = frozenset({Tier.MEMORY})
#: The generation scope that every registry write bumps.
REGISTRY_SCOPE = "registry"


def _when(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dates(dates: DateRange | None) -> tuple[str | None, str | None]:
    if dates is None:
        return (None, None)
    return (_when(dates.start), _when(dates.end))


def bars_key(
    source: str,
    data_version: str,
    codes: Sequence[str],
    ktype: KType,
    adjust: Adjust,
    dates: DateRange | None,
) -> CacheKey:
    """A bar query: the codes (as a set: results are in code order whatever the order asked), period,
    adjustment and dates."""
    return CacheKey.of(
        "bars",
        source=source,
        data_version=data_version,
        schema=BARS_SCHEMA,
        params={
            "codes": tuple(sorted(set(codes))),
            "ktype": ktype.value,
            "adjust": adjust.value,
            "dates": _dates(dates),
        },
        tiers=SHARED,
    )


def stocks_key(
    source: str,
    data_version: str,
    market: Market | None,
    types: Sequence[StockType] | None,
    valid: bool | None,
) -> CacheKey:
    return CacheKey.of(
        "stocks",
        source=source,
        data_version=data_version,
        schema=STOCKS_SCHEMA,
        params={
            "market": None if market is None else market.value,
            "types": None if types is None else tuple(sorted(t.value for t in types)),
            "valid": valid,
        },
        tiers=SHARED,
    )


def features_key(
    source: str,
    data_version: str,
    *,
    universe: str,
    factor_set: str,
    engine: str,
    dates: DateRange,
    label: bool,
) -> CacheKey:
    """An Alpha158 (+ label) frame: ``universe`` is the universe's fingerprint (its spans)."""
    return CacheKey.of(
        "features",
        source=source,
        data_version=data_version,
        schema=FEATURES_SCHEMA,
        params={
            "universe": universe,
            "factor_set": factor_set,
            "engine": engine,
            "dates": _dates(dates),
            "label": label,
        },
        tiers=ALL_TIERS,
    )


def registry_identity(url: str) -> str:
    """A registry's identity in keys: a digest of its URL (no password ever lands in a key)."""
    return "registry:" + hashlib.sha256(url.encode()).hexdigest()[:16]


def record_key(registry: str, generation: str, model_id: str) -> CacheKey:
    """A model record by id, valid while the registry's generation is unchanged."""
    return CacheKey.of(
        "model",
        source=registry,
        data_version=generation,
        schema=RECORD_SCHEMA,
        params={"id": model_id},
        tiers=SHARED,
    )


def resolve_key(registry: str, generation: str, prefix: str) -> CacheKey:
    """The id an id prefix resolves to, valid while the registry's generation is unchanged."""
    return CacheKey.of(
        "model-prefix",
        source=registry,
        data_version=generation,
        schema=RECORD_SCHEMA,
        params={"prefix": prefix.upper()},
        tiers=SHARED,
    )


def booster_key(model_id: str, updated_at: dt.datetime, sha256: str) -> CacheKey:
    """A loaded booster: in memory only (the artifact store is its disk copy)."""
    return CacheKey.of(
        "booster",
        source="artifacts",
        data_version=sha256,
        schema=BOOSTER_SCHEMA,
        params={"id": model_id, "updated_at": updated_at.isoformat()},
        tiers=MEMORY_ONLY,
    )


def prediction_key(
    source: str,
    data_version: str,
    *,
    model_id: str,
    updated_at: dt.datetime,
    universe: str,
    dates: DateRange,
) -> CacheKey:
    """Scores of a model (as its record is now) over a universe's members within ``dates``."""
    return CacheKey.of(
        "predictions",
        source=source,
        data_version=data_version,
        schema=PREDICTION_SCHEMA,
        params={
            "model": model_id,
            "updated_at": updated_at.isoformat(),
            "universe": universe,
            "dates": _dates(dates),
        },
        tiers=ALL_TIERS,
    )
