"""Batch commands' metrics: ``--metrics-file`` (node_exporter textfile format, atomic) and a push to a real
Pushgateway (the Debian ``prometheus-pushgateway`` binary) when ``HQ_PUSHGATEWAY_URL`` is set."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from obs_support import free_port, sample

from conftest import require

REPO = Path(__file__).resolve().parents[2]


def hq(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith(("HQ_", "OTEL_"))}
    full.update({"HQ_HOME": str(home), **env})
    return subprocess.run(
        [sys.executable, "-m", "hikyuu_qlib", *args], capture_output=True, text=True, env=full, timeout=300
    )


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus-pushgateway")
    require(
        binary is not None, "prometheus-pushgateway not installed (Debian package prometheus-pushgateway)"
    )
    assert binary is not None
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "pushgateway did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_export_writes_its_metrics_file_and_pushes_them(pushgateway: str, tmp_path: Path) -> None:
    group = {"job": "hq", "instance": socket.gethostname(), "kind": "data_export_qlib"}
    ok = hq(
        "data", "export-qlib", "--source", "synthetic", "--code", "SH600000", "--out", str(tmp_path / "q"),
        "--metrics-file", str(tmp_path / "export.prom"), "--format", "json",
        home=tmp_path, HQ_PUSHGATEWAY_URL=pushgateway,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    text = (tmp_path / "export.prom").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("export.prom.")]  # no temporary left
    assert sample(text, "hq_jobs_total", kind="data_export_qlib", status="succeeded") == 1
    assert sample(text, "hq_jobs_running", kind="data_export_qlib") == 0
    finished = sample(text, "hq_job_last_success_timestamp_seconds", kind="data_export_qlib")
    assert abs(finished - time.time()) < 120
    assert "process_" not in text and "_created" not in text  # nothing of a process that has exited

    pushed = httpx.get(f"{pushgateway}/metrics").text
    assert sample(pushed, "hq_jobs_total", **group, status="succeeded") == 1
    assert sample(pushed, "hq_job_last_success_timestamp_seconds", **group) == pytest.approx(finished)

    failed = hq(
        "data", "export-qlib", "--source", f"qlib:{tmp_path / 'no-such-store'}", "--out", str(tmp_path / "q2"),
        "--metrics-file", str(tmp_path / "failed.prom"),
        home=tmp_path, HQ_PUSHGATEWAY_URL=pushgateway,
    )  # fmt: skip
    assert failed.returncode != 0
    assert sample((tmp_path / "failed.prom").read_text(), "hq_jobs_total", status="failed") == 1
    pushed = httpx.get(f"{pushgateway}/metrics").text
    assert sample(pushed, "hq_jobs_total", **group, status="failed") == 1
    # the failed run leaves the last success in place: the staleness alert counts from it
    assert sample(pushed, "hq_job_last_success_timestamp_seconds", **group) == pytest.approx(finished)


def test_an_export_reports_its_data_load(tmp_path: Path) -> None:
    """The export's reads count as the other data loads do: one load of the store's day bars, its bars,
    and the error type of each code that failed."""
    proc = hq(
        "data", "export-qlib", "--source", "synthetic", "--code", "SH600000", "--code", "SZ000001",
        "--code", "SH699999", "--out", str(tmp_path / "q"), "--metrics-file", str(tmp_path / "export.prom"),
        "--format", "json", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr[-2000:]  # one code unknown: partial success
    done = json.loads(proc.stdout)
    text = (tmp_path / "export.prom").read_text()
    loaded = sample(text, "hq_data_bars_loaded_total", store_kind="synthetic", ktype="day")
    assert loaded == done["rows"] + done["off_calendar_rows"] > 0
    assert sample(text, "hq_data_load_duration_seconds_count", store_kind="synthetic", ktype="day") == 1
    assert sample(text, "hq_data_load_duration_seconds_sum", store_kind="synthetic", ktype="day") > 0
    # each failed code once, by its error type (sample() sums over the error types)
    assert sample(text, "hq_data_load_errors_total", store_kind="synthetic") == len(done["failed"]) == 1


def test_a_bad_metrics_file_is_refused_before_the_work(tmp_path: Path) -> None:
    for bad, words in (
        (tmp_path / "missing" / "x.prom", "does not exist"),
        (tmp_path / "x.txt", "*.prom"),
    ):
        proc = hq(
            "data", "export-qlib", "--source", "synthetic", "--code", "SH600000", "--out", str(tmp_path / "q"),
            "--metrics-file", str(bad), home=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "--metrics-file" in proc.stderr
        assert not (tmp_path / "q").exists()


def test_an_unreachable_pushgateway_does_not_fail_the_command(tmp_path: Path) -> None:
    proc = hq(
        "data", "export-qlib", "--source", "synthetic", "--code", "SH600000", "--out", str(tmp_path / "q"),
        home=tmp_path, HQ_PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "could not push metrics to the Pushgateway" in proc.stderr
