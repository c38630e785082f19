"""The HTTP clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), over httpx.

Both mirror the service's endpoints and the in-process clients' vocabulary::

    with Client("http://127.0.0.1:8000", token=TOKEN) as hq:
        bars = hq.bars(["SH600000", "SZ000001"], start="2020-01-01", end="2020-12-31")   # polars
        model = hq.model("01J9ZQ")                                                      # a Model
        job = hq.wait(hq.submit("train", {...}))                                        # polls
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

import httpx
import polars as pl

from hikyuu_qlib.client import base as b
from hikyuu_qlib.domain.errors import LoadErrors
from hikyuu_qlib.domain.jobs import Job, JobKind
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.loadplan import LoadResult

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


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

    # --- health ---------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return dict(b.json_of(self._http.get("/v1/health")))

    def ready(self) -> dict[str, Any]:
        """The readiness checks (a 503 raises :class:`~.base.ServiceError`)."""
        return dict(b.json_of(self._http.get("/v1/ready")))

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
        rows: list[dict[str, Any]] = []
        while True:
            doc = b.json_of(self._http.get("/v1/stocks", params=params))
            rows.extend(doc["stocks"])
            if not doc.get("next_page_token"):
                return b.stock_frame(rows), str(doc.get("source") or "")
            params["page_token"] = doc["next_page_token"]

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
        return self.load_many_from(
            codes, universe=universe, start=start, end=end, ktype=ktype, adjust=adjust
        )[0]

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
        params = b.bars_params(codes, universe, start, end, ktype, adjust)
        return b.load_result_source(
            self._http.get("/v1/bars", params=params, headers={"Accept": b.ARROW_ZSTD})
        )

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
        result = self.load_many(codes, universe=universe, start=start, end=end, ktype=ktype, adjust=adjust)
        if result.errors:
            raise LoadErrors(result.errors)
        return result.frame

    def members(self, universe: str, *, date: b.DateLike = None) -> pl.DataFrame:
        doc = b.json_of(
            self._http.get(f"/v1/universes/{universe}/members", params=b._clean({"date": b._day(date)}))
        )
        return b.members_frame(doc["members"])

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
        token: str | None = None
        while True:
            items, token = self.models_page(
                status=status,
                model_type=model_type,
                name=name,
                tags=tags,
                order=order,
                page_size=page_size,
                page_token=token,
            )
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
        if page_token:
            params["page_token"] = page_token
        return b.models_page(self._http.get("/v1/models", params=params))

    def model(self, ref: str) -> Model:
        """A model by id or unique prefix."""
        return Model.from_json(b.json_of(self._http.get(f"/v1/models/{ref}")))

    def importance(self, ref: str, *, top: int = 20) -> dict[str, list[dict[str, Any]]] | None:
        """A model's feature importance: per kind, its ``top`` features (``[{"feature", "value"}]``,
        largest first); None for a model stored without one."""
        return b.importance_of(self._http.get(f"/v1/models/{ref}/importance", params={"top": top}))

    def promote(self, ref: str, to: str = "deployed") -> Model:
        return self.transition(ref, to)[1]

    def transition(self, ref: str, to: str = "deployed") -> tuple[str, Model]:
        """Move a model to ``to``: the status it had, and the model as it is now."""
        doc = b.json_of(self._http.post(f"/v1/models/{ref}/promote", json={"to": to}))
        return str(doc["from"]), Model.from_json(doc["model"])

    def delete_model(self, model_id: str) -> None:
        b.raise_for_problem(self._http.delete(f"/v1/models/{model_id}"))

    def predict(
        self, model: str, *, start: b.DateLike, end: b.DateLike, universe: str | None = None
    ) -> b.Predictions:
        body = b._clean({"model": model, "universe": universe, "start": b._day(start), "end": b._day(end)})
        return b.predictions(self._http.post("/v1/predictions", json=body, headers={"Accept": b.ARROW}))

    # --- jobs -----------------------------------------------------------------------------------------

    def submit(self, kind: str | JobKind, spec: Mapping[str, Any]) -> Job:
        """Queue a job (``spec`` as the job's schema, without ``kind``)."""
        return b.job_of(b.json_of(self._http.post("/v1/jobs", json=b.job_body(kind, spec))))

    def job(self, job_id: str) -> Job:
        return b.job_of(b.json_of(self._http.get(f"/v1/jobs/{job_id}")))

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
        params: dict[str, Any] = b._clean(
            {"status": status, "page_size": page_size, "page_token": page_token}
        )
        doc = b.json_of(self._http.get("/v1/jobs", params=params))
        return [b.job_of(j) for j in doc["jobs"]], doc.get("next_page_token") or None

    def cancel(self, job_id: str) -> Job:
        return b.job_of(b.json_of(self._http.delete(f"/v1/jobs/{job_id}")))

    def wait_once(self, job_id: str, timeout: float = b.WAIT_CHUNK_S) -> Job:
        """The job once it ended, or as it is after ``timeout`` seconds (the server may wait less):
        one long poll (``GET /v1/jobs/{id}/wait``)."""
        response = self._http.get(
            f"/v1/jobs/{job_id}/wait", params={"timeout": timeout}, timeout=b.wait_http_timeout(timeout)
        )
        return b.job_of(b.json_of(response))

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
            if current.status.finished:
                return b.check_finished(current, raise_on_failure)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {current.status.value} after {timeout:g} s")
            time.sleep(max(0.0, min(poll - (time.monotonic() - asked), deadline - time.monotonic())))


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

    async def health(self) -> dict[str, Any]:
        return dict(b.json_of(await self._http.get("/v1/health")))

    async def ready(self) -> dict[str, Any]:
        return dict(b.json_of(await self._http.get("/v1/ready")))

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
        rows: list[dict[str, Any]] = []
        while True:
            doc = b.json_of(await self._http.get("/v1/stocks", params=params))
            rows.extend(doc["stocks"])
            if not doc.get("next_page_token"):
                return b.stock_frame(rows)
            params["page_token"] = doc["next_page_token"]

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
        params = b.bars_params(codes, universe, start, end, ktype, adjust)
        return b.load_result(
            await self._http.get("/v1/bars", params=params, headers={"Accept": b.ARROW_ZSTD})
        )

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
        result = await self.load_many(
            codes, universe=universe, start=start, end=end, ktype=ktype, adjust=adjust
        )
        if result.errors:
            raise LoadErrors(result.errors)
        return result.frame

    async def members(self, universe: str, *, date: b.DateLike = None) -> pl.DataFrame:
        response = await self._http.get(
            f"/v1/universes/{universe}/members", params=b._clean({"date": b._day(date)})
        )
        return b.members_frame(b.json_of(response)["members"])

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
        while True:
            items, token = b.models_page(await self._http.get("/v1/models", params=params))
            for item in items:
                yield item
            if not token:
                return
            params["page_token"] = token

    async def model(self, ref: str) -> Model:
        return Model.from_json(b.json_of(await self._http.get(f"/v1/models/{ref}")))

    async def importance(self, ref: str, *, top: int = 20) -> dict[str, list[dict[str, Any]]] | None:
        return b.importance_of(await self._http.get(f"/v1/models/{ref}/importance", params={"top": top}))

    async def promote(self, ref: str, to: str = "deployed") -> Model:
        doc = b.json_of(await self._http.post(f"/v1/models/{ref}/promote", json={"to": to}))
        return Model.from_json(doc["model"])

    async def delete_model(self, model_id: str) -> None:
        b.raise_for_problem(await self._http.delete(f"/v1/models/{model_id}"))

    async def predict(
        self, model: str, *, start: b.DateLike, end: b.DateLike, universe: str | None = None
    ) -> b.Predictions:
        body = b._clean({"model": model, "universe": universe, "start": b._day(start), "end": b._day(end)})
        return b.predictions(await self._http.post("/v1/predictions", json=body, headers={"Accept": b.ARROW}))

    async def submit(self, kind: str | JobKind, spec: Mapping[str, Any]) -> Job:
        return b.job_of(b.json_of(await self._http.post("/v1/jobs", json=b.job_body(kind, spec))))

    async def job(self, job_id: str) -> Job:
        return b.job_of(b.json_of(await self._http.get(f"/v1/jobs/{job_id}")))

    async def jobs(self, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[Job]:
        params: dict[str, Any] = b._clean({"status": status, "page_size": page_size})
        while True:
            doc = b.json_of(await self._http.get("/v1/jobs", params=params))
            for job in doc["jobs"]:
                yield b.job_of(job)
            if not doc.get("next_page_token"):
                return
            params["page_token"] = doc["next_page_token"]

    async def cancel(self, job_id: str) -> Job:
        return b.job_of(b.json_of(await self._http.delete(f"/v1/jobs/{job_id}")))

    async def wait_once(self, job_id: str, timeout: float = b.WAIT_CHUNK_S) -> Job:
        response = await self._http.get(
            f"/v1/jobs/{job_id}/wait", params={"timeout": timeout}, timeout=b.wait_http_timeout(timeout)
        )
        return b.job_of(b.json_of(response))

    async def wait(
        self, job: Job | str, *, timeout: float = 3600.0, poll: float = 0.5, raise_on_failure: bool = True
    ) -> Job:
        job_id = job.id if isinstance(job, Job) else job
        deadline = time.monotonic() + timeout
        while True:
            asked = time.monotonic()
            current = await self.wait_once(job_id, b.wait_chunk(deadline - asked))
            if current.status.finished:
                return b.check_finished(current, raise_on_failure)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {current.status.value} after {timeout:g} s")
            await asyncio.sleep(max(0.0, min(poll - (time.monotonic() - asked), deadline - time.monotonic())))
