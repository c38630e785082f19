"""Example job bodies of the OpenAPI document, made for the server's own store.

The example train job trains in seconds on what the server reads: a universe of its store (the first
of :data:`UNIVERSES` with members), its last trading days as the three segments, few boosting rounds.
A client (or an API fuzzer) that sends it gets a job that succeeds and registers a model, so the
documented chain (create a job, wait for it, read its model, predict) can be followed as written.
A store too short for the segments, or without such a universe, gets no example.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from hikyuu_qlib.domain.errors import HQError
from hikyuu_qlib.marketdata import AsyncMarketDataClient

log = logging.getLogger(__name__)

#: Universes tried for the example, in order.
UNIVERSES = ("csi300", "csi500", "all")
#: Trading days of each segment of the example (train, valid, test: the store's last ones).
TRAIN_DAYS, VALID_DAYS, TEST_DAYS = 300, 120, 120
#: Trading days before the train segment that the factors look back on.
LOOKBACK_DAYS = 60
#: Boosting rounds of the example (a few: it shows the API, not a good model).
ROUNDS = 10


def _day(value: Any) -> str:
    return (value.date() if isinstance(value, dt.datetime) else value).isoformat()


async def train_example(market: AsyncMarketDataClient) -> dict[str, Any] | None:
    """The body of a quick train job on ``market``'s store, or None if it has no fitting universe or
    too few trading days."""
    try:
        days = (await market.calendar()).sort()
    except HQError as exc:
        log.info("no example train job: the store's calendar cannot be read (%s)", exc)
        return None
    need = LOOKBACK_DAYS + TRAIN_DAYS + VALID_DAYS + TEST_DAYS
    if days.len() < need:
        return None
    n = days.len()
    test = (days[n - TEST_DAYS], days[n - 1])
    valid = (days[n - TEST_DAYS - VALID_DAYS], days[n - TEST_DAYS - 1])
    train = (days[n - need + LOOKBACK_DAYS], days[n - TEST_DAYS - VALID_DAYS - 1])
    for universe in UNIVERSES:
        try:
            members = await market.members(universe, start=train[0], end=test[1])
        except HQError:
            continue
        if members.height:
            break
    else:
        return None
    spans = {"train": train, "valid": valid, "test": test}
    return {
        "kind": "train",
        "universe": universe,
        "segments": {name: f"{_day(a)}:{_day(b)}" for name, (a, b) in spans.items()},
        "model": {"name": "example", "seed": 0, "num_threads": 1},
        "num_boost_round": ROUNDS,
    }


def with_job_examples(schema: dict[str, Any], train: dict[str, Any] | None) -> dict[str, Any]:
    """``schema`` (an OpenAPI document) with the example train job on ``POST /v1/jobs``."""
    if train is None:
        return schema
    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    body["examples"] = {
        "train": {
            "summary": "a quick train job on this server's store",
            "description": (
                f"{ROUNDS} boosting rounds on {train['universe']}, over the store's last "
                f"{TRAIN_DAYS + VALID_DAYS + TEST_DAYS} trading days: it succeeds in seconds and "
                "registers a model (the job's result.model_id)"
            ),
            "value": train,
        }
    }
    return schema
