"""``hq`` commands asking a real ``hq serve`` (``--server``/``--token``, or ``HQ_SERVER``/``HQ_TOKEN``):
the same output as the same command run locally on the server's store and registry.

Remote runs get an empty ``HQ_HOME`` and no ``HQ_SOURCE``: whatever they print came from the server.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from service_support import SEGMENTS, TRAIN, Server, free_port, make_tokens

from hikyuu_qlib.cli.main import run_hq
from hikyuu_qlib.client import Client

SOURCE = "synthetic:5?stocks=40&years=3"


def _hq(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hikyuu_qlib", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


Run = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def hq(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """``hq ARGS`` in this process (as the ``hq`` entry point runs it) with the ``HQ_*`` settings of
    ``env`` (and no others): what it printed, and its exit code. The package logger is given back as it
    was (the command sets its own handler on it), so later tests' log capture sees the records."""
    logger = logging.getLogger("hikyuu_qlib")
    saved = (list(logger.handlers), logger.level, logger.propagate)

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        for name in [n for n in os.environ if n.startswith("HQ_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            if name.startswith("HQ_"):
                monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = run_hq(["--log-level", "WARNING", *args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    yield run
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def _doc(proc: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)  # exactly one JSON document


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("cli-serve"), make_tokens(), source=SOURCE).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def model_id(server: Server, remote_env: dict[str, str]) -> str:
    """A model trained by ``hq model train --server``: a train job of the server."""
    spans = [f"--{name}={span}" for name, span in SEGMENTS.items()]
    proc = _hq(
        "model", "train", *spans, "--universe", "csi300", "--name", "served", "--seed", "3",
        "--threads", "2", "--num-boost-round", "10", "--format", "json", *_remote(server, "write"),
        env=remote_env,
    )  # fmt: skip
    doc = _doc(proc)
    assert doc["model"]["status"] == "trained" and doc["model"]["tags"]["job_id"] == doc["job_id"]
    assert set(doc["metrics"]) >= {"train", "valid", "test"} and doc["rounds"] == 10
    return str(doc["model"]["id"])


@pytest.fixture(scope="module")
def local_env(server: Server) -> dict[str, str]:
    """A local run on the server's own store and registry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env.update(HQ_HOME=str(server.home), HQ_SOURCE=server.source)
    return env


@pytest.fixture(scope="module")
def remote_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A remote run: nothing local to read (an empty home, no source)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env["HQ_HOME"] = str(tmp_path_factory.mktemp("client-home"))
    return env


def _remote(server: Server, scope: str = "read") -> list[str]:
    token = server.tokens.write if scope == "write" else server.tokens.read
    return ["--server", server.url, "--token", token]


def test_data_bars_from_a_server_print_what_a_local_run_prints(
    hq: Run, server: Server, local_env: dict[str, str], remote_env: dict[str, str]
) -> None:
    with Client(server.url, server.tokens.read) as client:
        codes = client.stocks(has_data=True)["code"].to_list()[:3]
    args = ["data", "bars", *codes, "SH999999", "NOT-A-CODE", "--start", "2016-01-01", "--end", "2016-06-30"]
    local = _doc(hq(*args, "--format", "json", env=local_env), code=5)  # two codes fail: partial
    remote = _doc(hq(*args, "--format", "json", *_remote(server), env=remote_env), code=5)
    assert remote == local
    assert local["rows"] > 100 and set(local["errors"]) == {"SH999999", "NOT-A-CODE"}
    assert remote["source"] == local["source"] != ""
    # the environment names the server as well as --server does
    env = {**remote_env, "HQ_SERVER": server.url, "HQ_TOKEN": server.tokens.read}
    assert _doc(_hq(*args, "--format", "json", env=env), code=5) == local  # a whole process
    # --server '' runs locally whatever the environment says: nothing to read in the empty home
    proc = hq("data", "bars", codes[0], "--server", "", "--source", SOURCE, "--format", "json", env=env)
    assert _doc(proc)["source"] == local["source"]


def test_data_stocks_from_a_server_print_what_a_local_run_prints(
    hq: Run, server: Server, local_env: dict[str, str], remote_env: dict[str, str]
) -> None:
    filters: list[list[str]] = [
        [],
        ["--all"],
        ["--market", "sz"],
        ["--type", "a_share", "--type", "index", "--has-data"],
        ["--market", "SH", "--no-data", "--all"],
    ]
    for chosen in filters:
        args = ["data", "stocks", *chosen, "--format", "json"]
        local = _doc(hq(*args, env=local_env))
        remote = _doc(hq(*args, *_remote(server), env=remote_env))
        assert remote == local, chosen
    everything = _doc(hq("data", "stocks", "--all", "--format", "json", *_remote(server), env=remote_env))
    assert everything["rows"] == 41 and everything["source"] != ""  # 40 stocks and the index
    # more stocks than the server's page: every page is followed
    with Client(server.url, server.tokens.read) as client:
        paged, source = client.stocks_from(valid=None, page_size=7)
    assert (
        paged["code"].to_list() == [s["code"] for s in everything["data"]] and source == everything["source"]
    )
    refused = hq("data", "stocks", "--source", SOURCE, "--format", "json", *_remote(server), env=remote_env)
    assert "--source" in _doc(refused, code=2)["error"]["message"]


def test_model_list_and_show_from_a_server_match_the_registry(
    hq: Run, server: Server, model_id: str, local_env: dict[str, str], remote_env: dict[str, str]
) -> None:
    local = _doc(hq("model", "list", "--format", "json", env=local_env))
    remote = _doc(hq("model", "list", "--format", "json", *_remote(server), env=remote_env))
    assert remote == local and [m["id"] for m in local["models"]] == [model_id]
    shown = _doc(
        hq("model", "show", model_id[:8].lower(), "--format", "json", *_remote(server), env=remote_env)
    )
    local = _doc(hq("model", "show", model_id, "--format", "json", env=local_env))
    # the record as the registry holds it, and the feature importance the server's store holds with it
    assert shown == local and set(local["importance"]) >= {"gain", "split"}
    assert all(len(rows) == 20 for rows in local["importance"].values())
    top = ["model", "show", model_id, "--top", "3", "--format", "json"]
    fewer = _doc(hq(*top, *_remote(server), env=remote_env))
    assert fewer == _doc(hq(*top, env=local_env)) and len(fewer["importance"]["gain"]) == 3
    table = hq("model", "show", model_id, "--top", "3", *_remote(server), env=remote_env)
    assert table.returncode == 0 and "importance: gain" in table.stdout
    missing = hq("model", "show", "0000000000", "--format", "json", *_remote(server), env=remote_env)
    assert _doc(missing, code=3)["error"]["type"] == "ModelNotFoundError"  # exit 3, as locally


def test_predict_through_a_server_writes_the_local_scores(
    hq: Run,
    server: Server,
    model_id: str,
    local_env: dict[str, str],
    remote_env: dict[str, str],
    tmp_path: Path,
) -> None:
    args = ["predict", model_id, "--start", "2017-01-01", "--end", "2017-03-31", "--format", "json"]
    local = _doc(hq(*args, "--out", str(tmp_path / "local.parquet"), env=local_env))
    remote = _doc(hq(*args, "--out", str(tmp_path / "remote.parquet"), *_remote(server), env=remote_env))
    assert {**remote, "out": None} == {**local, "out": None} and local["rows"] > 0
    here, there = (
        pl.read_parquet(tmp_path / f"{n}.parquet").sort("datetime", "code") for n in ("local", "remote")
    )
    assert there.select("datetime", "code").equals(here.select("datetime", "code"))
    assert there["score"].to_list() == pytest.approx(here["score"].to_list())
    refused = hq(*args, "--out", str(tmp_path / "x.parquet"), "--no-cache", *_remote(server), env=remote_env)
    assert "--no-cache" in _doc(refused, code=2)["error"]["message"]


def test_backtest_run_through_a_server_is_a_job_with_the_local_statistics(
    hq: Run,
    server: Server,
    model_id: str,
    local_env: dict[str, str],
    remote_env: dict[str, str],
    tmp_path: Path,
) -> None:
    args = ["backtest", "run", "--model", model_id, "--start", "2017-01-01", "--end", "2017-06-30"]
    args += ["--benchmark", "", "--topk", "10", "--n-drop", "2", "--format", "json"]
    refused = hq(*args, *_remote(server), env=remote_env)  # a read token cannot start a job
    assert _doc(refused, code=1)["error"]["type"] == "ServiceAuthError"
    remote = _doc(hq(*args, *_remote(server, "write"), env=remote_env))
    local = _doc(hq(*args, "--out", str(tmp_path / "local"), env=local_env))
    assert remote["days"] == local["days"] > 0 and remote["model_id"] == local["model_id"] == model_id
    assert json.dumps(remote["statistics"], sort_keys=True) == json.dumps(local["statistics"], sort_keys=True)
    assert Path(remote["report"]).is_file()  # written by the server under its home
    assert Path(remote["report"]).is_relative_to(server.home / "jobs" / remote["job_id"])
    # the job is the server's: hq jobs shows it as GET /v1/jobs/{id} does
    shown = _doc(hq("jobs", "show", remote["job_id"], "--format", "json", *_remote(server), env=remote_env))
    with Client(server.url, server.tokens.read) as client:
        assert shown["status"] == "succeeded" and shown["result"]["report"] == remote["report"]
        assert shown["links"]["model"] == f"/v1/models/{model_id}"
        assert shown == json.loads(json.dumps(_get_job(client, remote["job_id"])))


def _get_job(client: Client, job_id: str) -> dict[str, Any]:
    return dict(client._http.get(f"/v1/jobs/{job_id}").json())


def test_jobs_submit_wait_list_and_cancel(
    hq: Run, server: Server, model_id: str, remote_env: dict[str, str], tmp_path: Path
) -> None:
    body = tmp_path / "evaluate.json"
    body.write_text(json.dumps({"model": model_id, "start": "2017-01-01", "end": "2017-03-31"}))
    write = _remote(server, "write")
    done = _doc(
        hq("jobs", "submit", "evaluate", str(body), "--wait", "--format", "json", *write, env=remote_env)
    )
    assert done["status"] == "succeeded" and done["result"]["model_id"] == model_id
    listed = _doc(hq("jobs", "list", "--limit", "1", "--format", "json", *_remote(server), env=remote_env))
    assert [j["id"] for j in listed["jobs"]] == [done["id"]] and listed["next_cursor"]
    following = hq(
        "jobs",
        "list",
        "--cursor",
        listed["next_cursor"],
        "--format",
        "json",
        *_remote(server),
        env=remote_env,
    )
    assert done["id"] not in [j["id"] for j in _doc(following)["jobs"]]
    long = tmp_path / "train.json"
    long.write_text(json.dumps({**TRAIN, "num_boost_round": 5000, "model": {"name": "cli-cancel"}}))
    queued = _doc(hq("jobs", "submit", "train", str(long), "--format", "json", *write, env=remote_env))
    cancelled = _doc(hq("jobs", "cancel", queued["id"], "--format", "json", *write, env=remote_env))
    assert cancelled["cancel_requested"] or cancelled["status"] == "cancelled"
    waited = hq(
        "jobs", "wait", queued["id"], "--timeout", "120", "--format", "json", *_remote(server), env=remote_env
    )
    assert _doc(waited, code=1)["status"] == "cancelled"  # a job that did not succeed exits 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": model_id, "unknown": 1}))
    refused = hq("jobs", "submit", "evaluate", str(bad), "--format", "json", *write, env=remote_env)
    assert _doc(refused, code=2)["error"]["type"] == "InvalidInputError"  # 422: nothing queued
    no_server = hq("jobs", "list", "--format", "json", env=remote_env)
    assert "--server" in _doc(no_server, code=2)["error"]["message"]


def test_a_server_that_cannot_be_reached_or_refuses_the_token_is_named(
    hq: Run, server: Server, remote_env: dict[str, str]
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    proc = _hq("model", "list", "--server", down, "--format", "json", env=remote_env)  # a whole process
    error = _doc(proc, code=1)["error"]
    assert error["type"] == "ServiceError" and down in error["message"]
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr
    no_token = hq("model", "list", "--server", server.url, "--format", "json", env=remote_env)
    assert _doc(no_token, code=1)["error"]["type"] == "ServiceAuthError"
    wrong = hq("model", "list", "--server", "ftp://x", "--format", "json", env=remote_env)
    assert _doc(wrong, code=2)["error"]["type"] == "InvalidInputError"
