"""Shared fixtures: the real data in ../shared/data and the real services, and runs costly enough to be
shared by several test modules.

With ``CI=true`` a missing data directory or service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selection_support import SelectionRun

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, or fail when running in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _data_root() -> Path:
    return Path(os.environ.get("HQ_TEST_DATA", REPO.parent / "shared" / "data")).expanduser()


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    require(root.is_dir(), f"test data not found at {root} (set HQ_TEST_DATA)")
    return root


@pytest.fixture(scope="session")
def hikyuu_dir(data_root: Path) -> Path:
    path = data_root / "hikyuu"
    require((path / "stock.db").is_file(), f"Hikyuu test store not found at {path}")
    return path


@pytest.fixture(scope="session")
def qlib_dir(data_root: Path) -> Path:
    path = data_root / "qlib_cn"
    require((path / "calendars" / "day.txt").is_file(), f"Qlib test store not found at {path}")
    return path


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("HQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    require(_port_open("127.0.0.1", 5432), "PostgreSQL not reachable on 127.0.0.1:5432")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("HQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    require(_port_open("127.0.0.1", 6379), "Redis not reachable on 127.0.0.1:6379")
    return url


@pytest.fixture(scope="session")
def pyqlib(qlib_dir: Path):  # type: ignore[no-untyped-def]
    """pyqlib initialised on the shared Qlib store (once per session)."""
    try:
        import qlib
    except ImportError:
        require(False, "pyqlib is not installed (pip install -e '.[qlib]')")
        raise
    qlib.init(provider_uri=str(qlib_dir), region="cn", kernels=1)
    return qlib


# --- pyqlib's parity references ------------------------------------------------------------------------


def pyqlib_cache_dir(config: pytest.Config) -> Path:
    """Where the parity references live (pytest's cache directory; see ``tests/pyqlib_references.py``)."""
    assert config.cache is not None
    return Path(config.cache.mkdir("hq-pyqlib"))


def pyqlib_reference(request: pytest.FixtureRequest, qlib_dir: Path, ref: Any) -> dict[str, Any]:
    """A parity reference's frames (``tests/pyqlib_references.py``): from the cache, else built with
    pyqlib (the test is skipped, or fails under CI, without it)."""
    from tests.pyqlib_references import build, load

    cache = pyqlib_cache_dir(request.config)
    frames = load(ref, cache, qlib_dir)
    if frames is None:
        request.getfixturevalue("pyqlib")
        frames = build(ref, cache, qlib_dir)
    return frames


# --- runs shared by several end-to-end modules -----------------------------------------------------------


@pytest.fixture(scope="session")
def csi300_selection(qlib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SelectionRun:
    """One selection run of the example workflow on CSI300 for the session (four trainings; see
    ``tests/e2e/selection_support.py``): test_workflow_select.py checks what it reports, test_bounded_run.py
    compares the same selection within a memory budget to it, and test_cli_backtest.py backtests its
    registered model. No test changes its outputs; a backtest of its model adds that backtest's summary to
    the model's record.

    Defined here, not in a conftest.py of tests/e2e: test modules import ``require`` from the module named
    ``conftest``, which a second conftest.py would replace."""
    import json

    from cli_support import run_hq_here  # tests/e2e, on the path once its modules are collected
    from selection_support import EXAMPLE, REPO, SELECT, SPANS, SelectionRun, workflow_env

    tmp = tmp_path_factory.mktemp("csi300-selection")
    config = tmp / "select.yaml"
    config.write_text(EXAMPLE.read_text().replace("  params: {}", SELECT))
    env = workflow_env(tmp, qlib_dir, **SPANS)
    proc = run_hq_here("run", str(config), "--format", "json", "--memory-budget", "16GB", env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return SelectionRun(config, env, json.loads(proc.stdout))
