"""The HTTP clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), over httpx.

Both mirror the service's endpoints and the in-process clients' vocabulary::

    with Client("http://127.0.0.1:8000", token=TOKEN) as hq:
        bars = hq.bars(["SH600000", "SZ000001"], start="2020-01-01", end="2020-12-31")   # polars
        model = hq.model("01J9ZQ")                                                      # a Model
        job = hq.wait(hq.submit("train", {...}))                                        # polls

Each call is built and read by :mod:`.base` (one :class:`~.base.Call` per endpoint); a client sends it on
its own httpx client, blocking or awaited, and follows the pages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import polars as pl

from hikyuu_qlib.client import base as b
from hikyuu_qlib.domain.errors import LoadErrors
from hikyuu_qlib.domain.jobs import Job, JobKind
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.loadplan import LoadResult

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
T = TypeVar("T")


def _frame_of(result: LoadResult) -> pl.DataFrame:
    """The bars of a load; raises :class:`LoadErrors` if any code failed."""
    if result.errors:
        raise LoadErrors(result.errors)
    return result.frame


class Client:
    """A blocking client of ``hq serve``."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=b.headers(token), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: b.Call[T]) -> T:
        response = self._http.request(
            call.method,
            call.url,
            params=call.params,
            json=call.json,
            headers=call.headers,
            timeout=httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout,
        )
        return call.read(response)

    # --- health ---------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._send(b.health())

    def ready(self) -> dict[str, Any]:
        """The readiness checks (a 503 raises :class:`~.base.ServiceError`)."""
        return self._send(b.ready())

    # --- market data ----------------------------------------------------------------------------------

    def stocks(
        self,
        *,
        market: str | None = None,
        type: str | Iterable[str] | None = None,
        has_data: bool | None = None,
        valid: bool | None = None,
        page_size: int = 1000,
    ) -> pl.DataFrame:
        """The whole stock list (every page followed); ``type`` one stock type or several."""
        return self.stocks_from(
            market=market, type=type, has_data=has_data, valid=valid, page_size=page_size
        )[0]

    def stocks_from(
        self,
        *,
        market: str | None = None,
        type: str | Iterable[str] | None = None,
        has_data: bool | None = None,
        valid: bool | None = None,
        page_size: int = 1000,
    ) -> tuple[pl.DataFrame, str]:
        """:meth:`stocks`, and the source the server listed them from."""
        params = b.stocks_params(market, type, has_data, valid, page_size)
        rows, token, source = self._send(b.stocks_page(params, None))
        while token:
            more, token, source = self._send(b.stocks_page(params, token))
            rows.extend(more)
        return b.stock_frame(rows), source

    def load_many(
        self,
        codes: str | Iterable[str] | None = None,
        *,
        universe: str | None = None,
        start: b.DateLike = None,
        end: b.DateLike = None,
        ktype: str = "day",
        adjust: str = "none",
    ) -> LoadResult:
        """Bars of the codes (or of a universe's members) with the per-code errors, as in process."""
        return self._send(b.bars(b.bars_params(codes, universe, start, end, ktype, adjust)))[0]

    def load_many_from(
        self,
        codes: str | Iterable[str] | None = None,
        *,
        universe: str | None = None,
        start: b.DateLike = None,
        end: b.DateLike = None,
        ktype: str = "day",
        adjust: str = "none",
    ) -> tuple[LoadResult, str]:
        """:meth:`load_many`, and the source the server read the bars from."""
        return self._send(b.bars(b.bars_params(codes, universe, start, end, ktype, adjust)))

    def bars(
        self,
        codes: str | Iterable[str] | None = None,
        *,
        universe: str | None = None,
        start: b.DateLike = None,
        end: b.DateLike = None,
        ktype: str = "day",
        adjust: str = "none",
    ) -> pl.DataFrame:
        """Bars in one frame; raises :class:`LoadErrors` if any code failed."""
        return _frame_of(
            self.load_many(codes, universe=universe, start=start, end=end, ktype=ktype, adjust=adjust)
        )

    def members(self, universe: str, *, date: b.DateLike = None) -> pl.DataFrame:
        return self._send(b.members(universe, date))

    # --- models ---------------------------------------------------------------------------------------

    def models(
        self,
        *,
        status: str | None = None,
        model_type: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        order: str = "-created",
        page_size: int = 100,
    ) -> Iterator[Model]:
        """Every matching model, following the pages."""
        params = b.models_params(status, model_type, name, tags, order, page_size)
        token: str | None = None
        while True:
            items, token = self._send(b.models(params, token))
            yield from items
            if not token:
                return

    def models_page(
        self,
        *,
        status: str | None = None,
        model_type: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        order: str = "-created",
        page_size: int = 100,
        page_token: str | None = None,
    ) -> tuple[list[Model], str | None]:
        """One page of models and the token of the next (None on the last page)."""
        params = b.models_params(status, model_type, name, tags, order, page_size)
        return self._send(b.models(params, page_token))

    def model(self, ref: str) -> Model:
        """A model by id or unique prefix."""
        return self._send(b.model(ref))

    def importance(self, ref: str, *, top: int = 20) -> dict[str, list[dict[str, Any]]] | None:
        """A model's feature importance: per kind, its ``top`` features (``[{"feature", "value"}]``,
        largest first); None for a model stored without one."""
        return self._send(b.importance(ref, top))

    def promote(self, ref: str, to: str = "deployed") -> Model:
        return self.transition(ref, to)[1]

    def transition(self, ref: str, to: str = "deployed") -> tuple[str, Model]:
        """Move a model to ``to``: the status it had, and the model as it is now."""
        return self._send(b.promote(ref, to))

    def delete_model(self, model_id: str) -> None:
        self._send(b.delete_model(model_id))

    def predict(
        self, model: str, *, start: b.DateLike, end: b.DateLike, universe: str | None = None
    ) -> b.Predictions:
        return self._send(b.predict(model, start, end, universe))

    # --- jobs -----------------------------------------------------------------------------------------

    def submit(self, kind: str | JobKind, spec: Mapping[str, Any]) -> Job:
        """Queue a job (``spec`` as the job's schema, without ``kind``)."""
        return self._send(b.submit(kind, spec))

    def job(self, job_id: str) -> Job:
        return self._send(b.job(job_id))

    def jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        token: str | None = None
        while True:
            items, token = self.jobs_page(status=status, page_size=page_size, page_token=token)
            yield from items
            if not token:
                return

    def jobs_page(
        self, *, status: str | None = None, page_size: int = 100, page_token: str | None = None
    ) -> tuple[list[Job], str | None]:
        """One page of jobs (newest first) and the token of the next (None on the last page)."""
        return self._send(b.jobs(status, page_size, page_token))

    def cancel(self, job_id: str) -> Job:
        return self._send(b.cancel(job_id))

    def wait_once(self, job_id: str, timeout: float = b.WAIT_CHUNK_S) -> Job:
        """The job once it ended, or as it is after ``timeout`` seconds (the server may wait less):
        one long poll (``GET /v1/jobs/{id}/wait``)."""
        return self._send(b.wait(job_id, timeout))

    def wait(
        self, job: Job | str, *, timeout: float = 3600.0, poll: float = 0.5, raise_on_failure: bool = True
    ) -> Job:
        """Wait until a job ended (long polls of at most a minute each, at least ``poll`` seconds apart);
        raises :class:`~.base.JobFailedError` if it failed or was cancelled (unless
        ``raise_on_failure=False``), :class:`TimeoutError` past ``timeout`` seconds."""
        job_id = job.id if isinstance(job, Job) else job
        deadline = time.monotonic() + timeout
        while True:
            asked = time.monotonic()
            current = self.wait_once(job_id, b.wait_chunk(deadline - asked))
            if not b.still_running(job_id, current, deadline, timeout, time.monotonic()):
                return b.check_finished(current, raise_on_failure)
            time.sleep(b.pause(poll, asked, deadline, time.monotonic()))


class AsyncClient:
    """An asyncio client of ``hq serve``; the same calls as :class:`Client`, awaited."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=b.headers(token), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: b.Call[T]) -> T:
        response = await self._http.request(
            call.method,
            call.url,
            params=call.params,
            json=call.json,
            headers=call.headers,
            timeout=httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout,
        )
        return call.read(response)

    async def health(self) -> dict[str, Any]:
        return await self._send(b.health())

    async def ready(self) -> dict[str, Any]:
        return await self._send(b.ready())

    async def stocks(
        self,
        *,
        market: str | None = None,
        type: str | Iterable[str] | None = None,
        has_data: bool | None = None,
        valid: bool | None = None,
        page_size: int = 1000,
    ) -> pl.DataFrame:
        params = b.stocks_params(market, type, has_data, valid, page_size)
        rows, token, _ = await self._send(b.stocks_page(params, None))
        while token:
            more, token, _ = await self._send(b.stocks_page(params, token))
            rows.extend(more)
        return b.stock_frame(rows)

    async def load_many(
        self,
        codes: str | Iterable[str] | None = None,
        *,
        universe: str | None = None,
        start: b.DateLike = None,
        end: b.DateLike = None,
        ktype: str = "day",
        adjust: str = "none",
    ) -> LoadResult:
        return (await self._send(b.bars(b.bars_params(codes, universe, start, end, ktype, adjust))))[0]

    async def bars(
        self,
        codes: str | Iterable[str] | None = None,
        *,
        universe: str | None = None,
        start: b.DateLike = None,
        end: b.DateLike = None,
        ktype: str = "day",
        adjust: str = "none",
    ) -> pl.DataFrame:
        return _frame_of(
            await self.load_many(codes, universe=universe, start=start, end=end, ktype=ktype, adjust=adjust)
        )

    async def members(self, universe: str, *, date: b.DateLike = None) -> pl.DataFrame:
        return await self._send(b.members(universe, date))

    async def models(
        self,
        *,
        status: str | None = None,
        model_type: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        order: str = "-created",
        page_size: int = 100,
    ) -> AsyncIterator[Model]:
        params = b.models_params(status, model_type, name, tags, order, page_size)
        token: str | None = None
        while True:
            items, token = await self._send(b.models(params, token))
            for item in items:
                yield item
            if not token:
                return

    async def model(self, ref: str) -> Model:
        return await self._send(b.model(ref))

    async def importance(self, ref: str, *, top: int = 20) -> dict[str, list[dict[str, Any]]] | None:
        return await self._send(b.importance(ref, top))

    async def promote(self, ref: str, to: str = "deployed") -> Model:
        return (await self._send(b.promote(ref, to)))[1]

    async def delete_model(self, model_id: str) -> None:
        await self._send(b.delete_model(model_id))

    async def predict(
        self, model: str, *, start: b.DateLike, end: b.DateLike, universe: str | None = None
    ) -> b.Predictions:
        return await self._send(b.predict(model, start, end, universe))

    async def submit(self, kind: str | JobKind, spec: Mapping[str, Any]) -> Job:
        return await self._send(b.submit(kind, spec))

    async def job(self, job_id: str) -> Job:
        return await self._send(b.job(job_id))

    async def jobs(self, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[Job]:
        token: str | None = None
        while True:
            items, token = await self._send(b.jobs(status, page_size, token))
            for item in items:
                yield item
            if not token:
                return

    async def cancel(self, job_id: str) -> Job:
        return await self._send(b.cancel(job_id))

    async def wait_once(self, job_id: str, timeout: float = b.WAIT_CHUNK_S) -> Job:
        return await self._send(b.wait(job_id, timeout))

    async def wait(
        self, job: Job | str, *, timeout: float = 3600.0, poll: float = 0.5, raise_on_failure: bool = True
    ) -> Job:
        job_id = job.id if isinstance(job, Job) else job
        deadline = time.monotonic() + timeout
        while True:
            asked = time.monotonic()
            current = await self.wait_once(job_id, b.wait_chunk(deadline - asked))
            if not b.still_running(job_id, current, deadline, timeout, time.monotonic()):
                return b.check_finished(current, raise_on_failure)
            await asyncio.sleep(b.pause(poll, asked, deadline, time.monotonic()))
