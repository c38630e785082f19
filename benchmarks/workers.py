"""Measurements in fresh processes: a suite script run as ``python SUITE.py worker KIND ARGS…`` prints one
JSON line; the parent polls the peak RSS of its process tree, with an optional cap and time limit."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from common import REPO

Worker = Callable[..., dict[str, Any]]


def tree_rss(proc: psutil.Process) -> int:
    """The RSS of a process and its children, in bytes (0 once it is gone)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def kill_tree(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.kill()


def measure(
    script: str,
    kind: str,
    *args: str,
    log: logging.Logger,
    cap_mb: int | None = None,
    timeout_s: float | None = None,
    allow_fail: bool = False,
    report_completion: bool = True,
    hash_seed: str | None = None,
) -> dict[str, Any]:
    """Run worker ``kind`` of ``script``: its JSON (last stdout line) plus the peak RSS of its process
    tree. With ``cap_mb`` the worker is killed when its tree's RSS passes the cap (and after
    ``timeout_s``); a failed or stopped worker raises, or with ``allow_fail`` gives ``completed: false``
    (``completed: true`` otherwise, unless ``report_completion`` is false). ``hash_seed`` fixes the
    worker's ``PYTHONHASHSEED`` unless the environment sets it: pyqlib's DEnsembleModel keeps the features
    it selects as a set, so their column order (and LightGBM's column sampling) follows string hashing."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        popen = subprocess.Popen(
            [sys.executable, script, "worker", kind, *args],
            stdout=out,
            cwd=REPO,
            env={
                **({"PYTHONHASHSEED": hash_seed} if hash_seed is not None else {}),
                **os.environ,
                "PYTHONPATH": str(REPO / "src"),
            },
        )
        proc = psutil.Process(popen.pid)
        peak = 0
        stopped: str | None = None
        while popen.poll() is None:
            rss = tree_rss(proc)
            peak = max(peak, rss)
            if cap_mb is not None and rss > cap_mb * 2**20:
                stopped = f"RSS {rss / 2**20:.0f} MB over the {cap_mb} MB cap"
                kill_tree(proc)
            elif timeout_s is not None and time.perf_counter() - began > timeout_s:
                stopped = f"still running after {timeout_s:.0f}s"
                kill_tree(proc)
            time.sleep(0.02)
        out.seek(0)
        text = out.read().decode()
    seconds = time.perf_counter() - began
    doc: dict[str, Any]
    if popen.returncode != 0 or stopped:
        if not allow_fail:
            raise RuntimeError(f"worker {kind} failed with exit code {popen.returncode}")
        doc = {"completed": False, "stopped": stopped or f"exit code {popen.returncode}", "seconds": seconds}
    else:
        doc = json.loads(text.strip().splitlines()[-1])
        if report_completion:
            doc["completed"] = True
    doc["peak_rss_mb"] = round(peak / 2**20, 1)
    log.info("%s: %s", kind, doc)
    return doc


def emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def serve_worker(workers: Mapping[str, Worker], argv: list[str]) -> None:
    """The child side: ``argv`` is ``[script, "worker", KIND, ARGS…]``; runs KIND and prints its JSON."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    emit(workers[argv[2]](*argv[3:]))
