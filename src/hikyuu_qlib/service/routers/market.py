"""Market data: ``/v1/stocks``, ``/v1/bars`` and ``/v1/universes/{name}/members``.

Every read runs off the event loop: bars in the server's body processes (:mod:`..bodies`), the rest on
the market data client's bounded executor. A bars request
names its codes (``codes=SH600000,SZ000001``) or a universe (its members within the dates); a code that
fails is reported in the body's ``errors`` beside the bars of the others (200), a malformed code is a 400.
"""

import datetime as dt
import hashlib
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParam
from starlette.responses import Response

from hikyuu_qlib.domain import DateRange, Market, StockType
from hikyuu_qlib.domain.codes import StockCode
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.service.bodies import body_response
from hikyuu_qlib.service.deps import READ, json_response, state_of
from hikyuu_qlib.service.formats import MediaType, arrow_compression, negotiate
from hikyuu_qlib.service.problems import problems
from hikyuu_qlib.service.schemas import CODE_PATTERN, BarsOut, MembersOut, StockPage
from hikyuu_qlib.settings import Settings

_FRAME_TYPES = {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}
FRAME_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "the frame, in the format the Accept header asks for", "content": _FRAME_TYPES}
}

KTypeName = Literal[
    "day", "week", "month", "quarter", "halfyear", "year", "min", "min5", "min15", "min30", "min60"
]
AdjustName = Literal["none", "forward", "backward"]
StockTypeName = Literal[
    "block", "a_share", "index", "b_share", "fund", "etf", "gov_bond", "other_bond", "chinext", "star"
]


def _page_fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def parse_codes(text: str) -> list[StockCode]:
    """Codes of a comma-separated list; a malformed one is an error naming it (nothing is read)."""
    return [StockCode.parse(item) for item in text.split(",") if item.strip()]


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["market data"])
    max_codes = settings.api_max_codes
    max_page = settings.api_max_page_size
    codes_pattern = f"^(?:{CODE_PATTERN})(?:,(?:{CODE_PATTERN})){{0,{max_codes - 1}}}$"

    @api.get(
        "/v1/stocks",
        response_model=StockPage,
        operation_id="listStocks",
        summary="The stock list, filtered and paged",
        dependencies=READ,
        responses=problems(400, 401, 403, 422),
    )
    async def stocks(
        request: Request,
        market: Annotated[Literal["SH", "SZ", "BJ"] | None, Query(description="exchange")] = None,
        type: Annotated[
            list[StockTypeName] | None,
            Query(description="stock type; repeat for several (any of them)", max_length=10),
        ] = None,
        has_data: Annotated[bool | None, Query(description="only codes with (true) or without bars")] = None,
        valid: Annotated[bool | None, Query(description="only listed (true) or delisted codes")] = None,
        page_size: Annotated[int, Query(ge=1, le=max_page, description=f"1..{max_page}")] = 100,
        page_token: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        state = state_of(request)
        types = sorted({StockType.parse(t) for t in type}) if type else None
        frame = await state.market.stocks(
            market=None if market is None else Market(market), types=types, valid=valid, has_data=has_data
        )
        codec = state.models.cursors
        fingerprint = _page_fingerprint("stocks", market, types, has_data, valid, state.source)
        offset = 0
        if page_token:
            (offset,) = codec.decode(page_token, "stocks", fingerprint)
            if not isinstance(offset, int) or offset < 0:
                raise InvalidInputError("invalid page_token")
        page = frame.slice(offset, page_size)
        following = offset + page.height
        token = codec.encode("stocks", fingerprint, [following]) if following < frame.height else None
        rows = page.with_columns(
            pl.col(c).cast(pl.String) for c in ("start_date", "end_date") if c in page.columns
        ).to_dicts()
        return json_response(
            {"stocks": rows, "total_size": frame.height, "next_page_token": token, "source": state.source}
        )

    @api.get(
        "/v1/bars",
        response_model=BarsOut,
        operation_id="getBars",
        summary="Bars of codes (or of a universe's members) in JSON, CSV, Arrow IPC stream or Parquet",
        dependencies=READ,
        responses={**FRAME_RESPONSE, **problems(400, 401, 403, 404, 406, 422)},
    )
    async def bars(
        request: Request,
        codes: Annotated[
            str | None,
            Query(
                pattern=codes_pattern,
                description=f"comma-separated codes (SH600000, 600000.SH …), at most {max_codes}",
            ),
        ] = None,
        universe: Annotated[
            str | None,
            Query(min_length=1, max_length=200, description="instead of codes: a universe's members"),
        ] = None,
        start: Annotated[dt.date | None, Query(description="first day (default: the first bar)")] = None,
        end: Annotated[dt.date | None, Query(description="last day (default: the last bar)")] = None,
        ktype: Annotated[KTypeName, Query(description="bar period")] = "day",
        adjust: Annotated[AdjustName, Query(description="price adjustment")] = "none",
        accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        state = state_of(request)
        fmt = negotiate(accept)
        dates = DateRange.of(start, end)
        if (codes is None) == (universe is None):
            raise InvalidInputError("give codes or universe (one of them)")
        if codes is not None:
            wanted = parse_codes(codes)
        else:
            assert universe is not None
            members = await state.market.members(universe, start=dates.start, end=dates.end)
            wanted = [StockCode.parse(c) for c in members["code"].unique(maintain_order=True).to_list()]
        if not wanted:
            raise InvalidInputError("no stock codes given")
        if len(wanted) > max_codes:
            raise InvalidInputError(f"{len(wanted)} codes asked; at most {max_codes} in one request")
        body = await state.bodies.body(
            [str(c) for c in wanted],
            start=dates.start,
            end=dates.end,
            ktype=ktype,
            adjust=adjust,
            media=fmt,
            compression=arrow_compression(accept) if fmt is MediaType.ARROW else None,
        )
        return body_response(body, fmt)

    @api.get(
        "/v1/universes/{name}/members",
        response_model=MembersOut,
        operation_id="getUniverseMembers",
        summary="Members of a point-in-time universe (on one date, or all their spans)",
        dependencies=READ,
        responses=problems(400, 401, 403, 404, 422),
    )
    async def members(
        request: Request,
        name: Annotated[str, PathParam(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")],
        date: Annotated[
            dt.date | None, Query(description="members on this day (default: every span)")
        ] = None,
    ) -> Response:
        state = state_of(request)
        frame = await state.market.members(name, start=date, end=date)
        doc = {
            "universe": name,
            "date": None if date is None else date.isoformat(),
            "rows": frame.height,
            "members": frame.with_columns(
                pl.col("start").dt.strftime("%Y-%m-%dT%H:%M:%S"),
                pl.col("end").dt.strftime("%Y-%m-%dT%H:%M:%S"),
            ).to_dicts(),
        }
        return json_response(doc)

    return api
