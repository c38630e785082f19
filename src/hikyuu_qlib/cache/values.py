"""Codecs of the platform's cached values: bar load results, model records, loaded boosters.

A load result is its frame as Arrow IPC with the codes without bars in the schema metadata (only results
without errors are cached). A model record is its JSON document (:meth:`Model.to_json`), read back
through :meth:`Model.from_json`, which validates every field as a new record would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import orjson

from hikyuu_qlib.cache.codec import JsonCodec, MemoryOnly, read_frame, write_frame
from hikyuu_qlib.domain.cache import Tier
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.loadplan import LoadResult

_WITHOUT = "hq.without_bars"


@dataclass(frozen=True)
class LoadResultCodec:
    """:class:`~hikyuu_qlib.loadplan.LoadResult` of a bar query that had no errors."""

    name: str = "bars"
    schema: int = 1
    storable: bool = True
    kind: str = "arrow"

    def size(self, value: LoadResult) -> int:
        return int(value.frame.estimated_size()) + 64 * len(value.without_bars) + 256

    def write(self, value: LoadResult, out: IO[bytes], tier: Tier) -> None:
        if value.errors:
            raise ValueError("a load result with errors is not cached")
        write_frame(value.frame, out, tier, {_WITHOUT: orjson.dumps(list(value.without_bars)).decode()})

    def read(self, payload: memoryview, tier: Tier) -> LoadResult:
        frame, meta = read_frame(payload, tier)
        try:
            without = orjson.loads(meta[_WITHOUT])
        except (KeyError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"no list of codes without bars ({exc})") from None
        if not isinstance(without, list) or not all(isinstance(c, str) for c in without):
            raise ValueError("the codes without bars are not a list of codes")
        return LoadResult(frame, {}, tuple(without))


def _booster_bytes(loaded: Any) -> int:
    """A loaded model's memory, measured by its model file (the text of its trees), at least 1 MiB."""
    artifact = getattr(getattr(loaded, "record", None), "artifact", None)
    return max(int(getattr(artifact, "size", 0) or 0), 1 << 20)


LOAD_RESULT = LoadResultCodec()
MODEL = JsonCodec[Model](name="model", schema=1, to_doc=Model.to_json, from_doc=Model.from_json)
MODEL_ID = JsonCodec[str](name="model-id", schema=1, to_doc=lambda v: v, from_doc=lambda d: str(d))
BOOSTER: MemoryOnly[Any] = MemoryOnly("booster", _booster_bytes)

__all__ = ["BOOSTER", "LOAD_RESULT", "MODEL", "MODEL_ID", "LoadResultCodec"]
