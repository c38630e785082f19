"""Cache keys, tiers and counters: the values the :class:`~hikyuu_qlib.ports.Cache` port speaks in.

A :class:`CacheKey` is built from typed fields, never from the ``repr`` of arguments: the operation, the
source identity, the source's data version, the operation's parameters (each a str, int, float, bool,
None or a tuple of those) and the value's schema version. Its :attr:`~CacheKey.digest` is a SHA-256 of
their canonical JSON, so a data update (a new data version) or a code change (a new schema version)
gives another key and can never serve a stale value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hikyuu_qlib.domain.errors import InvalidInputError

Param = str | int | float | bool | None | tuple["Param", ...]


class Tier(StrEnum):
    """The cache's tiers, nearest first."""

    MEMORY = "l1"  # in process, an LRU bounded in bytes
    REDIS = "l2"  # shared, within a value size cap, every key with a TTL
    DISK = "l3"  # local files (Arrow IPC, memory-mapped on read), bounded in bytes

    @property
    def label(self) -> str:
        return {"l1": "memory", "l2": "redis", "l3": "disk"}[self.value]

    @classmethod
    def parse(cls, text: str | Tier) -> Tier:
        """A tier by value (``l1``) or label (``memory``)."""
        if isinstance(text, Tier):
            return text
        name = text.strip().lower()
        for tier in cls:
            if name in (tier.value, tier.label):
                return tier
        known = ", ".join(f"{t.value} ({t.label})" for t in cls)
        raise InvalidInputError(f"unknown cache tier {text!r}: expected one of {known}")


ALL_TIERS = frozenset(Tier)


def _check(name: str, value: object) -> Param:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, tuple | list):
        return tuple(_check(name, v) for v in value)
    raise TypeError(
        f"cache key parameter {name!r} is a {type(value).__name__}: give a str, number, bool or tuple"
    )


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What a cached value is: identity fields (digested) and where it may be kept (``tiers``).

    ``tiers`` is a placement hint, not identity: the same value has the same key wherever it lives.
    """

    op: str
    source: str
    data_version: str
    params: tuple[tuple[str, Param], ...]
    schema: int
    tiers: frozenset[Tier] = ALL_TIERS
    digest: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.op or not self.op.replace("-", "").replace("_", "").isalnum():
            raise InvalidInputError(f"invalid cache operation name {self.op!r}")
        identity = {
            "op": self.op,
            "source": self.source,
            "data_version": self.data_version,
            "params": [[k, v] for k, v in self.params],
            "schema": self.schema,
        }
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        object.__setattr__(self, "digest", hashlib.sha256(text.encode()).hexdigest()[:40])

    @classmethod
    def of(
        cls,
        op: str,
        *,
        source: str,
        data_version: str,
        schema: int,
        params: Mapping[str, object] | None = None,
        tiers: frozenset[Tier] = ALL_TIERS,
    ) -> CacheKey:
        """A key from named parameters (sorted by name; each value checked to be plain data)."""
        checked = tuple(sorted((str(k), _check(k, v)) for k, v in (params or {}).items()))
        return cls(op, source, data_version, checked, schema, frozenset(tiers))

    @property
    def name(self) -> str:
        """``op:digest``: the name of the value in every tier (Redis adds its key prefix)."""
        return f"{self.op}:{self.digest}"


@dataclass
class TierCounters:
    """What one tier did: hits, misses, values written, damaged values deleted, failed calls."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0
    errors: int = 0

    def add(self, other: TierCounters) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.writes += other.writes
        self.corrupt += other.corrupt
        self.errors += other.errors

    def to_json(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "writes": self.writes,
            "corrupt": self.corrupt,
            "errors": self.errors,
        }


@dataclass
class CacheCounters:
    """Counters of a cache: per tier, plus the requests, the source computations and the requests that
    waited on another's computation (in this process or another)."""

    tiers: dict[Tier, TierCounters] = field(default_factory=lambda: {t: TierCounters() for t in Tier})
    requests: int = 0
    computed: int = 0
    shared: int = 0

    @property
    def hits(self) -> int:
        """Requests answered from a tier (the first tier that had the value)."""
        return sum(c.hits for c in self.tiers.values())

    @property
    def hit_ratio(self) -> float | None:
        """``hits / requests`` (None before any request)."""
        return None if self.requests == 0 else self.hits / self.requests

    def add(self, other: CacheCounters) -> None:
        for tier, counters in other.tiers.items():
            self.tiers[tier].add(counters)
        self.requests += other.requests
        self.computed += other.computed
        self.shared += other.shared

    def minus(self, before: CacheCounters) -> CacheCounters:
        """The counts since ``before`` (a copy taken earlier)."""
        out = CacheCounters()
        for tier in Tier:
            now, then = self.tiers[tier], before.tiers[tier]
            out.tiers[tier] = TierCounters(
                now.hits - then.hits,
                now.misses - then.misses,
                now.writes - then.writes,
                now.corrupt - then.corrupt,
                now.errors - then.errors,
            )
        out.requests = self.requests - before.requests
        out.computed = self.computed - before.computed
        out.shared = self.shared - before.shared
        return out

    def copy(self) -> CacheCounters:
        return self.minus(CacheCounters())

    def to_json(self) -> dict[str, object]:
        ratio = self.hit_ratio
        return {
            "requests": self.requests,
            "hits": self.hits,
            "hit_ratio": None if ratio is None else round(ratio, 4),
            "computed": self.computed,
            "shared": self.shared,
            "tiers": {t.value: c.to_json() for t, c in self.tiers.items()},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> CacheCounters:
        out = cls()
        for name in ("requests", "computed", "shared"):
            value = doc.get(name, 0)
            setattr(out, name, int(value) if isinstance(value, int) else 0)
        tiers = doc.get("tiers", {})
        if isinstance(tiers, Mapping):
            for tier in Tier:
                one = tiers.get(tier.value, {})
                if isinstance(one, Mapping):
                    out.tiers[tier] = TierCounters(
                        **{k: int(v) for k, v in one.items() if k in TierCounters.__dataclass_fields__}
                    )
        return out


@dataclass(frozen=True)
class TierUsage:
    """What a tier holds now: entries and bytes, its byte bound (None: unbounded), and whether it is
    available (``False``: not configured, or Redis unreachable; ``detail`` says which)."""

    tier: Tier
    available: bool
    entries: int = 0
    bytes: int = 0
    max_bytes: int | None = None
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "tier": self.tier.value,
            "kind": self.tier.label,
            "available": self.available,
            "entries": self.entries,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "detail": self.detail,
        }
