"""Suite ``service``: ``hq serve`` under load from a second process, against the same calls in process.

A real ``hq serve --workers 2`` on the Qlib store (``../shared/data/qlib_cn``) and a SQLite registry under
the bench work dir; load comes from a separate Python process over raw keep-alive HTTP/1.1 connections
(asyncio streams: a few µs of client work per request, so the figures are the server's).

- ``GET /v1/models/{id}``: p50 of sequential requests on one connection (goal <= 2 ms), and throughput
  of 32 connections for a few seconds (goal >= 1,500 requests/s); anchor: the async repository's ``get``
  in process (the overhead ratio is in ``extra``).
- ``GET /v1/bars``: 100 CSI300 members x 6 years as Arrow IPC, warm (repeated): the p50 of the best of
  ``rounds`` rounds of ``Client.load_many`` (goal <= 30 ms): the request in Arrow with zstd-compressed
  buffers, read into a polars frame; anchor: ``MarketDataClient.load_many`` of the same codes in process
  without a cache. The first request builds the body in the server's body process; the server keeps it
  whole in L1 (see :mod:`hikyuu_qlib.service.bodies`), so a repeated query is a lookup and the transfer
  of about 135 k rows (4 MB; ``extra`` also has the plain and the zstd fetch alone, bytes only).
- ``POST /v1/predictions``: CSI300 over 2020 from a model the predictor has loaded (its LRU) and the
  feature cache holds: p50 and p99; anchor: ``ResearchContext.predict`` in process.

The model is trained once (CSI300: train 2010-2014, valid 2015-2016, test 2017) and reused from the work dir on later runs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from common import REPO, Result, data_root, percentiles, work_dir

log = logging.getLogger("bench.service")
GOALS = {"model_get_p50_s": 0.002, "model_get_rps": 1500.0, "bars_p50_s": 0.030}
ARROW = "application/vnd.apache.arrow.stream"

LOAD = r"""
import asyncio, json, sys, time

async def main(port, path, token, conns, seconds, sequential):
    request = (f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
    latencies = []
    async def worker(deadline):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
        writer.close()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(worker(deadline) for _ in range(conns)))
    elapsed = time.perf_counter() - started
    print(json.dumps({"n": len(latencies), "seconds": elapsed, "latencies": sorted(latencies)[:: max(1, len(latencies) // 5000)]}))

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), False))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(port: int, path: str, token: str, conns: int, seconds: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, str(port), path, token, str(conns), str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return dict(json.loads(proc.stdout))


def _trained_model(home: Path, source: str) -> str:
    """The bench model (CSI300 2016-2019), trained once and kept in the work dir's registry."""
    from hikyuu_qlib.app import open_registry
    from hikyuu_qlib.domain.queries import ModelFilter
    from hikyuu_qlib.settings import Settings

    settings = Settings(home=home, source=source)
    with open_registry(settings=settings, sync=True) as registry:
        found = registry.find(ModelFilter(name="bench-service", status="trained"), limit=1).items
        if found:
            return found[0].id
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env.update(HQ_HOME=str(home))
    proc = subprocess.run(
        [sys.executable, "-m", "hikyuu_qlib", "--log-level", "WARNING", "model", "train", "--source", source,
         "--universe", "csi300", "--train", "2010-01-01:2014-12-31", "--valid", "2015-01-01:2016-12-31",
         "--test", "2017-01-01:2017-12-31", "--name", "bench-service", "--format", "json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return str(json.loads(proc.stdout)["model"]["id"])


def run(quick: bool) -> list[Result]:
    from hikyuu_qlib.service.auth import new_token

    qlib = data_root() / "qlib_cn"
    source = f"qlib:{qlib}"
    home = work_dir() / "service"
    home.mkdir(parents=True, exist_ok=True)
    model_id = _trained_model(home, source)
    token, entry = new_token("bench", "read")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env.update(HQ_HOME=str(home), HQ_SOURCE=source, HQ_API_TOKENS=json.dumps([entry.model_dump()]))
    server = subprocess.Popen(
        [sys.executable, "-m", "hikyuu_qlib", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        return _measure(url, port, token, headers, model_id, source, home, quick)
    finally:
        server.terminate()
        server.wait(60)


def _measure(
    url: str,
    port: int,
    token: str,
    headers: dict[str, str],
    model_id: str,
    source: str,
    home: Path,
    quick: bool,
) -> list[Result]:
    import asyncio

    import polars as pl

    from hikyuu_qlib.app import open_market, open_registry
    from hikyuu_qlib.client import Client
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import Settings

    settings = Settings(home=home, source=source)
    rounds = 2 if quick else 4
    seconds = 2.0 if quick else 4.0
    results: list[Result] = []

    # --- GET /v1/models/{id} ----------------------------------------------------------------------
    path = f"/v1/models/{model_id}"
    _load(port, path, token, 4, 1.0)  # warm both workers
    seq = [_load(port, path, token, 1, seconds) for _ in range(rounds)]
    p50s = [percentiles(r["latencies"])["p50"] for r in seq]
    par = [_load(port, path, token, 32, seconds) for _ in range(rounds)]
    rps = [r["n"] / r["seconds"] for r in par]

    async def in_process() -> float:
        async with open_registry(settings=settings) as repo:
            samples = []
            for _ in range(2000):
                started = time.perf_counter()
                await repo.get(model_id)
                samples.append(time.perf_counter() - started)
            return percentiles(samples)["p50"]

    anchor = asyncio.run(in_process())
    best_p50, best_rps = min(p50s), max(rps)
    results.append(
        Result(
            "service GET /v1/models/{id} (2 workers)",
            best_p50,
            anchor="async repository get in process (p50)",
            anchor_s=anchor,
            extra={
                "p50_s_rounds": p50s,
                "p99_s_rounds": [percentiles(r["latencies"])["p99"] for r in seq],
                "rps_rounds": rps,
                "rps_p99_s_rounds": [percentiles(r["latencies"])["p99"] for r in par],
                "overhead_ratio": best_p50 / anchor,
                "goal_p50_s": GOALS["model_get_p50_s"],
                "goal_rps": GOALS["model_get_rps"],
                "goal_met": best_p50 <= GOALS["model_get_p50_s"] and best_rps >= GOALS["model_get_rps"],
                "load": os.getloadavg(),
            },
        )
    )

    # --- GET /v1/bars (Arrow) --------------------------------------------------------------------------
    with open_market(settings=settings) as md:
        members = md.members("csi300", start="2020-01-02", end="2020-01-02")
        codes = sorted(members["code"].unique().to_list())[:100]
        bar_params = {"codes": ",".join(codes), "start": "2015-01-01", "end": "2020-12-31"}
        local = []
        for _ in range(5 if quick else 10):
            started = time.perf_counter()
            frame = md.load_many(codes, start="2015-01-01", end="2020-12-31").frame
            frame.to_arrow()
            local.append(time.perf_counter() - started)

    def rounds_of(call: Any) -> tuple[list[float], list[float]]:
        """p50 of each round of 20 (5 quick) repeated calls, after one call that builds the body."""
        started = time.perf_counter()
        call()
        cold = [time.perf_counter() - started]
        p50s = []
        for _ in range(rounds):
            lat = []
            for _ in range(5 if quick else 20):
                started = time.perf_counter()
                call()
                lat.append(time.perf_counter() - started)
            p50s.append(percentiles(lat)["p50"])
        return p50s, cold

    fetched: dict[str, int] = {}

    def fetch(http: httpx.Client) -> None:
        response = http.get("/v1/bars", params=bar_params)
        assert response.status_code == 200
        fetched[http.headers["Accept"]] = len(response.content)

    plain, zstd = ARROW, f"{ARROW}; compression=zstd"
    with httpx.Client(base_url=url, headers={**headers, "Accept": plain}, timeout=600) as http:
        plain_p50s, _ = rounds_of(lambda: fetch(http))
    with httpx.Client(base_url=url, headers={**headers, "Accept": zstd}, timeout=600) as http:
        zstd_p50s, _ = rounds_of(lambda: fetch(http))
    with Client(url, token, timeout=600) as client:
        client_p50s, cold = rounds_of(lambda: client.load_many(codes, start="2015-01-01", end="2020-12-31"))
    bars_p50 = min(client_p50s)
    results.append(
        Result(
            "service GET /v1/bars 100 CSI300 x 6y Arrow (warm: the body kept in L1), Client.load_many",
            bars_p50,
            anchor="MarketDataClient.load_many in process (p50)",
            anchor_s=percentiles(local)["p50"],
            extra={
                "rows": frame.height,
                "client_p50_s_rounds": client_p50s,
                "client_cold_s": cold,
                "arrow_zstd_fetch_p50_s": min(zstd_p50s),
                "arrow_zstd_bytes": fetched[zstd],
                "arrow_plain_fetch_p50_s": min(plain_p50s),
                "arrow_plain_bytes": fetched[plain],
                "overhead_ratio": bars_p50 / percentiles(local)["p50"],
                "goal_p50_s": GOALS["bars_p50_s"],
                "goal_met": bars_p50 <= GOALS["bars_p50_s"],
                "load": os.getloadavg(),
            },
        )
    )

    # --- POST /v1/predictions ----------------------------------------------------------------------
    body = {"model": model_id, "universe": "csi300", "start": "2020-01-01", "end": "2020-12-31"}
    preds = []
    with httpx.Client(
        base_url=url, headers={**headers, "Accept": "application/vnd.apache.arrow.stream"}, timeout=600
    ) as http:
        for _ in range(3 if quick else 10):
            started = time.perf_counter()
            response = http.post("/v1/predictions", json=body)
            preds.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    warm = preds[2:]  # a request per worker loads the model and computes (or reads) the features
    with ResearchContext.open(settings=settings) as ctx:
        ctx.predict(model_id, "csi300", DateRange.of("2020-01-01", "2020-12-31"))
        local = []
        for _ in range(3 if quick else 5):
            started = time.perf_counter()
            scores = ctx.predict(model_id, "csi300", DateRange.of("2020-01-01", "2020-12-31"))
            local.append(time.perf_counter() - started)
    assert isinstance(scores, pl.DataFrame)
    pred_p50 = percentiles(warm)["p50"]
    results.append(
        Result(
            "service POST /v1/predictions CSI300 2020 (model in the LRU, features cached)",
            pred_p50,
            anchor="ResearchContext.predict in process (p50, warm)",
            anchor_s=percentiles(local)["p50"],
            extra={
                "rows": scores.height,
                "p99_s": percentiles(warm)["p99"],
                "cold_s": preds[:2],
                "overhead_ratio": pred_p50 / percentiles(local)["p50"],
                "load": os.getloadavg(),
            },
        )
    )
    return results
