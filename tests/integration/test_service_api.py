"""The HTTP API in process (ASGI through httpx), over the real Qlib store and a SQLite registry:
formats, per-code errors, pages and their tokens, problem documents, auth on every write, bad input."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import pytest_asyncio
from service_support import SEGMENTS, make_tokens

from hikyuu_qlib.app import open_market, open_registry
from hikyuu_qlib.client import AsyncClient, ServiceAuthError
from hikyuu_qlib.domain.errors import LoadErrors, ModelNotFoundError
from hikyuu_qlib.domain.model import Model, ModelStatus, ModelType
from hikyuu_qlib.service import create_app
from hikyuu_qlib.settings import Settings

CODES = ["SH600000", "SZ000001", "SH600519"]


@pytest.fixture(scope="module")
def tokens():  # type: ignore[no-untyped-def]
    return make_tokens()


@pytest.fixture
def settings(qlib_dir: Path, tmp_path: Path, tokens) -> Settings:  # type: ignore[no-untyped-def]
    from hikyuu_qlib.settings import ApiToken

    entries = tuple(ApiToken.model_validate(e) for e in __import__("json").loads(tokens.env))
    return Settings(source=f"qlib:{qlib_dir}", home=tmp_path / "home", api_tokens=entries, api_max_codes=50)


@pytest_asyncio.fixture
async def api(settings: Settings, tokens) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hq") as client:
            client.headers["Authorization"] = f"Bearer {tokens.write}"
            client.app = app  # type: ignore[attr-defined]
            yield client


def _problem(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    wanted = (status,) if isinstance(status, int) else status
    assert response.status_code in wanted, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc = response.json()
    assert doc["status"] == response.status_code and doc["detail"] and doc["type"].startswith("urn:")
    assert "Traceback" not in response.text and 'File "' not in response.text
    return doc


def _saved_models(settings: Settings, n: int) -> list[Model]:
    with open_registry(settings=settings, sync=True) as registry:
        return [registry.save(Model.new(f"m{i}", ModelType.LIGHTGBM)) for i in range(n)]


async def test_health_ready_and_openapi(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/health")).json()["status"] == "ok"
    ready = (await api.get("/v1/ready", headers={"Authorization": ""})).json()
    assert ready["status"] == "ready" and set(ready["checks"]) == {"registry", "store"}  # no cache configured
    schema = (await api.get("/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    assert {"/v1/bars", "/v1/models/{model_ref}", "/v1/jobs", "/v1/predictions"} <= set(schema["paths"])


async def test_bars_formats_match_the_in_process_client(api: httpx.AsyncClient, settings: Settings) -> None:
    params = {"codes": ",".join([*CODES, "SZ999999"]), "start": "2019-01-01", "end": "2020-12-31"}
    with open_market(settings=settings) as md:
        expected = md.load_many([*CODES, "SZ999999"], start="2019-01-01", end="2020-12-31")
    arrow = await api.get(
        "/v1/bars", params=params, headers={"Accept": "application/vnd.apache.arrow.stream"}
    )
    assert arrow.status_code == 200 and arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    reader = ipc.open_stream(pa.BufferReader(arrow.content))
    frame = pl.from_arrow(reader.read_all())
    assert frame.equals(expected.frame)
    meta = __import__("json").loads(reader.schema.metadata[b"hq.meta"])
    assert set(meta["errors"]) == {"SZ999999"} and meta["errors"]["SZ999999"]["type"] == "UnknownCodeError"
    parquet = await api.get("/v1/bars", params=params, headers={"Accept": "application/vnd.apache.parquet"})
    assert pl.read_parquet(io.BytesIO(parquet.content)).equals(expected.frame)
    as_json = (await api.get("/v1/bars", params=params)).json()
    assert as_json["rows"] == expected.frame.height == len(as_json["bars"])
    assert set(as_json["errors"]) == {"SZ999999"}  # beside the bars, never as missing rows
    first = as_json["bars"][0]
    assert first["code"] == expected.frame["code"][0] and first["close"] == pytest.approx(
        expected.frame["close"][0]
    )
    csv = await api.get("/v1/bars", params=params, headers={"Accept": "text/csv"})
    assert pl.read_csv(io.BytesIO(csv.content)).height == expected.frame.height
    assert "SZ999999" in csv.headers["HQ-Meta"]
    _problem(await api.get("/v1/bars", params=params, headers={"Accept": "image/png"}), 406)


async def test_a_bars_body_is_built_in_a_body_process_and_kept_whole(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    import os

    state = api.app.state.hq  # type: ignore[attr-defined]
    arrow = {"Accept": "application/vnd.apache.arrow.stream"}
    params = {"codes": ",".join(CODES), "start": "2019-01-01", "end": "2019-12-31"}
    first = await api.get("/v1/bars", params=params, headers=arrow)
    assert first.status_code == 200 and int(first.headers["content-length"]) == len(first.content)
    pool = state.bodies._pool
    assert pool is not None and all(pid != os.getpid() for pid in pool._processes)  # built elsewhere
    kept = [n for n in state.cache.memory._items if n.startswith("bars-body:")]
    assert len(kept) == 1
    again = await api.get("/v1/bars", params={**params, "codes": ",".join(reversed(CODES))}, headers=arrow)
    assert again.content == first.content  # the kept body (codes are a set), not a new one
    assert [n for n in state.cache.memory._items if n.startswith("bars-body:")] == kept
    as_json = await api.get("/v1/bars", params=params)  # another format: another body
    assert as_json.json()["rows"] == pl.from_arrow(ipc.open_stream(first.content).read_all()).height
    assert len([n for n in state.cache.memory._items if n.startswith("bars-body:")]) == 2
    zstd = await api.get(
        "/v1/bars", params=params, headers={"Accept": "application/vnd.apache.arrow.stream; compression=zstd"}
    )
    plain = ipc.open_stream(first.content).read_all()
    assert ipc.open_stream(zstd.content).read_all().equals(plain) and len(zstd.content) < len(first.content)
    unknown = "application/vnd.apache.arrow.stream; compression=snappy"
    assert (
        "snappy"
        in _problem(await api.get("/v1/bars", params=params, headers={"Accept": unknown}), 406)["detail"]
    )
    assert len([n for n in state.cache.memory._items if n.startswith("bars-body:")]) == 3
    partial = await api.get("/v1/bars", params={**params, "codes": "SH600000,SZ999999"}, headers=arrow)
    assert "SZ999999" in partial.headers["HQ-Meta"]
    assert len([n for n in state.cache.memory._items if n.startswith("bars-body:")]) == 3  # not kept


async def test_the_client_reads_frames_and_raises_library_errors(
    api: httpx.AsyncClient, settings: Settings, tokens
) -> None:  # type: ignore[no-untyped-def]
    app = api.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://hq", tokens.read, transport=transport) as client:
        result = await client.load_many([*CODES, "SZ999999"], start="2020-01-01", end="2020-03-31")
        assert set(result.errors) == {"SZ999999"} and result.frame["code"].n_unique() == 3
        with pytest.raises(LoadErrors):
            await client.bars([*CODES, "SZ999999"], start="2020-01-01", end="2020-03-31")
        stocks = await client.stocks(has_data=True, page_size=100)  # eight pages followed
        with open_market(settings=settings) as md:
            assert stocks["code"].to_list() == md.stocks(valid=None, has_data=True)["code"].to_list()
        members = await client.members("csi300", date="2020-01-02")
        assert members.height > 250
        with pytest.raises(ModelNotFoundError):
            await client.model("01ABCDEF")
        with pytest.raises(ServiceAuthError):
            await client.delete_model("0" * 26)  # a read token on a write
    async with AsyncClient("http://hq", None, transport=transport) as anonymous:
        with pytest.raises(ServiceAuthError):
            await anonymous.model("01ABCDEF")


async def test_stock_pages_are_complete_and_their_tokens_signed(api: httpx.AsyncClient) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"page_size": 100}
    while True:
        doc = (await api.get("/v1/stocks", params=params)).json()
        seen.extend(s["code"] for s in doc["stocks"])
        if doc["next_page_token"] is None:
            break
        token = doc["next_page_token"]
        params["page_token"] = token
    assert len(seen) == len(set(seen)) == doc["total_size"]
    body, mac = token.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    _problem(await api.get("/v1/stocks", params={"page_token": tampered}), 400)
    # a token of another filter (or another list) is refused
    _problem(await api.get("/v1/stocks", params={"page_token": token, "market": "SH"}), 400)
    _problem(await api.get("/v1/models", params={"page_token": token}), 400)


async def test_models_pages_prefix_transitions_and_deletes(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    models = _saved_models(settings, 5)
    page = (await api.get("/v1/models", params={"page_size": 2})).json()
    assert len(page["models"]) == 2 and page["next_page_token"]
    rest = (
        await api.get("/v1/models", params={"page_size": 10, "page_token": page["next_page_token"]})
    ).json()
    assert len(rest["models"]) == 3 and rest["next_page_token"] is None
    target = models[0]
    got = (await api.get(f"/v1/models/{target.id.lower()}")).json()
    assert Model.from_json(got) == target
    refused = _problem(await api.post(f"/v1/models/{target.id}/promote", json={"to": "deployed"}), 409)
    assert refused["error"] == "IllegalTransitionError"
    moved = (await api.post(f"/v1/models/{target.id}/promote", json={"to": "archived"})).json()
    assert moved["from"] == "created" and moved["to"] == "archived"
    assert (await api.delete(f"/v1/models/{target.id}")).status_code == 204
    _problem(await api.get(f"/v1/models/{target.id}"), 404)
    _problem(await api.delete(f"/v1/models/{target.id}"), 404)
    with open_registry(settings=settings, sync=True) as registry:
        assert registry.get(models[1].id).status is ModelStatus.CREATED and registry.count() == 4


async def test_every_write_refuses_a_missing_or_read_token(
    api: httpx.AsyncClient, tokens, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    model = _saved_models(settings, 1)[0]
    schema = (await api.get("/openapi.json")).json()
    writes = [
        (method, path)
        for path, ops in schema["paths"].items()
        for method in ops
        if method in ("post", "delete") and path != "/v1/predictions"  # predictions only read
    ]
    assert {("post", "/v1/jobs"), ("delete", "/v1/models/{model_ref}"), ("post", "/v1/models/{model_ref}/promote"),
            ("delete", "/v1/jobs/{job_id}")} <= set(writes)  # fmt: skip
    for method, path in writes:
        url = path.format(model_id=model.id, model_ref=model.id, job_id="0" * 26)
        for headers, status in (({"Authorization": ""}, 401), ({"Authorization": f"Bearer {tokens.read}"}, 403),
                                ({"Authorization": "Bearer not-a-token"}, 401)):  # fmt: skip
            response = await api.request(method.upper(), url, headers=headers, json={"to": "archived"})
            _problem(response, status)
            assert "WWW-Authenticate" in response.headers
    # reads need a token too (no --public-read)
    _problem(await api.get("/v1/models", headers={"Authorization": ""}), 401)
    metrics = (await api.get("/metrics")).text
    assert 'hq_auth_failures_total{reason="missing"}' in metrics
    assert 'hq_auth_failures_total{reason="scope"} 4.0' in metrics
    with open_registry(settings=settings, sync=True) as registry:
        assert registry.get(model.id).status is ModelStatus.CREATED  # nothing was written


async def test_bad_input_is_a_problem_and_writes_nothing(api: httpx.AsyncClient, settings: Settings) -> None:
    bad = [
        api.get("/v1/bars", params={"codes": "SH600000,XX12"}),  # malformed code
        api.get("/v1/bars", params={"codes": "SH600000", "start": "2020-05-01", "end": "2020-01-01"}),
        api.get("/v1/bars", params={"codes": ",".join(f"SH{600000 + i}" for i in range(51))}),  # > max codes
        api.get("/v1/bars", params={"codes": "SH600000", "start": "2020-02-30"}),
        api.get("/v1/stocks", params={"page_size": 100_000}),
        api.get("/v1/models", params={"page_size": 0}),
        api.post(
            "/v1/jobs",
            json={
                "kind": "train",
                "segments": {
                    "train": "2015-01-01:2015-12-31",
                    "valid": "2016-01-01:2016-06-30",
                    "test": "2016-07-01:2016-12-31",
                },
                "surprise": 1,
            },
        ),
        api.post(
            "/v1/jobs",
            json={"kind": "backtest", "model": "01ABCD", "start": "2020-05-01", "end": "2020-01-01"},
        ),
        api.post("/v1/jobs", json={"kind": "evaluate", "model": "01ABCD", "nested": {"x": 1}}),
        api.post("/v1/jobs", json={"kind": "evaluate", "model": "01ABCD"}),  # no such model: 404
        api.post(
            "/v1/jobs",
            json={"kind": "backtest", "model": "0" * 26, "start": "2020-01-01", "end": "2020-02-01"},
        ),
        api.post(
            "/v1/jobs",
            json={"kind": "workflow", "config": {"source": "synthetic", "segments": {}, "extra": 1}},
        ),
        api.post("/v1/jobs", json={"kind": "launch"}),
        api.post(
            "/v1/jobs",
            content=b'{"kind": "train", "universe": "\xff\xfe"}',
            headers={"Content-Type": "application/json"},
        ),
        api.post("/v1/jobs", content=b"\x80\x81not json", headers={"Content-Type": "application/json"}),
        api.post(
            "/v1/jobs",
            json={
                "kind": "train",
                "source": "qlib:/elsewhere",
                "segments": {
                    "train": "2015-01-01:2015-12-31",
                    "valid": "2016-01-01:2016-06-30",
                    "test": "2016-07-01:2016-12-31",
                },
            },
        ),
        api.post("/v1/predictions", json={"model": "01ABCD", "start": "2020-05-01", "end": "2020-01-01"}),
        api.post(
            "/v1/predictions", json={"model": "01ABCD", "start": "2020-01-01", "end": "2020-05-01", "x": 1}
        ),
        api.post("/v1/jobs", content=b"x" * (2 << 20), headers={"Content-Type": "application/json"}),
    ]
    for call in bad:
        response = await call
        _problem(response, (400, 404, 413, 422))
    with open_registry(settings=settings, sync=True) as registry:
        assert registry.count() == 0
        assert registry.engine.connect().exec_driver_sql("SELECT count(*) FROM jobs").scalar() == 0


async def test_a_models_feature_importance_is_served_top_first(
    api: httpx.AsyncClient, settings: Settings, tokens
) -> None:  # type: ignore[no-untyped-def]
    from hikyuu_qlib.app import open_artifacts
    from hikyuu_qlib.domain.errors import ImportanceNotFoundError
    from hikyuu_qlib.domain.model import IMPORTANCE_ARTIFACT
    from hikyuu_qlib.modelling.importance import encode_importance, summary

    importance = {"gain": {"KMID": 3.5, "ROC5": 12.25, "MA10": 0.5}, "split": {"KMID": 4.0, "ROC5": 1.0}}
    ref = open_artifacts(settings).put_bytes(encode_importance(importance))
    with_one, without = _saved_models(settings, 2)
    with open_registry(settings=settings, sync=True) as registry:
        with_one = registry.save(with_one.with_artifact(ref, role=IMPORTANCE_ARTIFACT))
    # the whole id, in lower case: ids made in one millisecond share all but their last characters (monotonic
    # ULIDs), so no shorter prefix is sure to be unique here
    doc = (await api.get(f"/v1/models/{with_one.id.lower()}/importance", params={"top": 2})).json()
    assert doc == {
        "model_id": with_one.id,
        "top": 2,
        "importance": summary(importance, 2),  # what a local hq model show prints
        "features": {"gain": 3, "split": 2},
        "kinds": {"gain": doc["kinds"]["gain"], "split": doc["kinds"]["split"]},
    }
    assert [r["feature"] for r in doc["importance"]["gain"]] == ["ROC5", "KMID"]
    none = _problem(await api.get(f"/v1/models/{without.id}/importance"), 404)
    assert none["error"] == "ImportanceNotFoundError" and without.id in none["detail"]
    assert _problem(await api.get(f"/v1/models/{'0' * 26}/importance"), 404)["error"] == "ModelNotFoundError"
    _problem(await api.get(f"/v1/models/{with_one.id}/importance", params={"top": 0}), 422)
    transport = httpx.ASGITransport(app=api.app)  # type: ignore[attr-defined]
    async with AsyncClient("http://hq", tokens.read, transport=transport) as client:
        assert await client.importance(with_one.id, top=20) == summary(importance, 20)
        assert await client.importance(without.id) is None  # as load_importance: stored without one
        with pytest.raises(ModelNotFoundError):
            await client.importance("0" * 26)
    assert issubclass(ImportanceNotFoundError, LookupError)


async def test_stocks_of_several_types_and_their_source(api: httpx.AsyncClient, settings: Settings) -> None:
    from hikyuu_qlib.domain import StockType

    doc = (await api.get("/v1/stocks", params={"type": ["a_share", "index"], "page_size": 1000})).json()
    with open_market(settings=settings) as md:
        expected = md.stocks(valid=None, types=[StockType.A_SHARE, StockType.INDEX])
        assert doc["source"] == md.store.source
    assert [s["code"] for s in doc["stocks"]] == expected["code"].to_list() and doc["total_size"] > 0
    one = (await api.get("/v1/stocks", params={"type": "index", "page_size": 1000})).json()
    assert {s["type"] for s in one["stocks"]} <= {int(StockType.INDEX)}


async def test_waiting_for_a_job_answers_when_it_ends_or_at_the_timeout(settings: Settings, tokens) -> None:  # type: ignore[no-untyped-def]
    import time

    # no job runner in this app: a queued job stays queued until it is cancelled
    app = create_app(settings.model_copy(update={"api_max_wait": 1.0}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hq") as api:
            api.headers["Authorization"] = f"Bearer {tokens.write}"
            body = {"kind": "train", "segments": SEGMENTS}
            job = (await api.post("/v1/jobs", json=body)).json()
            started = time.monotonic()
            waited = await api.get(f"/v1/jobs/{job['id']}/wait", params={"timeout": 0.3})
            assert waited.status_code == 200 and waited.json()["status"] == "queued"
            assert 0.3 <= time.monotonic() - started < 5
            started = time.monotonic()  # a longer timeout than the server's longest wait is shortened
            assert (await api.get(f"/v1/jobs/{job['id']}/wait", params={"timeout": 600})).json()[
                "status"
            ] == "queued"
            assert 1.0 <= time.monotonic() - started < 10
            assert (await api.delete(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"
            started = time.monotonic()  # an ended job is answered at once
            ended = (await api.get(f"/v1/jobs/{job['id']}/wait", params={"timeout": 60})).json()
            assert ended["status"] == "cancelled" and time.monotonic() - started < 1.0
            _problem(await api.get(f"/v1/jobs/{'0' * 26}/wait"), 404)
            _problem(await api.get(f"/v1/jobs/{job['id']}/wait", params={"timeout": -1}), 422)
            read = {"Authorization": f"Bearer {tokens.read}"}  # waiting only reads
            assert (await api.get(f"/v1/jobs/{job['id']}/wait", headers=read)).status_code == 200
            # the client's wait: long polls until the job ended
            async with AsyncClient("http://hq", tokens.read, transport=transport) as client:
                assert (await client.wait(job["id"], raise_on_failure=False)).status.value == "cancelled"
                queued = (await api.post("/v1/jobs", json=body)).json()
                with pytest.raises(TimeoutError):
                    await client.wait(queued["id"], timeout=1.5)


async def test_the_openapi_document_has_a_train_job_example_for_the_store(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    from hikyuu_qlib.service.jobs.specs import JOB_BODY

    schema = (await api.get("/openapi.json")).json()
    content = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    example = content["examples"]["train"]["value"]
    body = JOB_BODY.validate_python(example)  # a valid body, on a universe and days the store has
    with open_market(settings=settings) as md:
        last = md.calendar().max()
        assert md.members(example["universe"]).height > 0
    assert body.kind == "train" and example["segments"]["test"].endswith(last.date().isoformat())
    links = schema["paths"]["/v1/jobs"]["post"]["responses"]["202"]["links"]
    assert links["WaitJob"]["operationId"] == "waitJob"
    wait = schema["paths"]["/v1/jobs/{job_id}/wait"]["get"]["responses"]["200"]["links"]
    assert wait["GetJobModel"]["parameters"] == {"model_ref": "$response.body#/result/model_id"}
