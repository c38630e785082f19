"""benchmarks/run.py's budgets: which results they apply to, what misses one, the metrics file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def runner() -> ModuleType:
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(name: str, ours: float, ratio: float | None = None, **extra: float) -> dict[str, object]:
    return {"name": name, "ours_s": ours, "ratio": ratio, "extra": extra}


def test_budgets_name_known_suites_and_apply_by_pattern() -> None:
    run = runner()
    budgets = run.load_budgets()
    assert {b["suite"] for b in budgets} <= set(run.available())
    overhead = "sqlite registry get p50 (10k), metrics on vs off"
    assert run.check("observability", record(overhead, 2e-5, ratio=0.97), budgets) == (True, [])
    ok, missed = run.check("observability", record(overhead, 2e-5, ratio=0.90), budgets)
    assert ok is False and "ratio 0.9 < 0.9524" in missed[0]
    assert run.check("registry", record("get p50 among 1000k [sqlite]", 5e-5, ratio=3.0), budgets)[0] is True
    assert run.check("registry", record("get p50 among 1000k [sqlite]", 2e-4, ratio=3.0), budgets)[0] is False
    assert run.check("registry", record("get p50 among 1000k [postgresql]", 2e-4), budgets) == (None, [])
    for backend in ("sqlite", "postgresql"):  # a single awaited get against the bare driver: both backends
        single = f"async get p50 among 10k [{backend}]"
        assert run.check("registry", record(single, 1e-4, ratio=1.02), budgets) == (True, [])
        assert run.check("registry", record(single, 1e-4, ratio=0.95), budgets)[0] is False
    assert (
        run.check("data", record("qlib 100 stocks x 1 year RSS growth", 0, rss_growth_mb=12), budgets)[0]
        is False
    )


def test_results_as_a_metrics_file(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    run = runner()
    records = [record("a", 0.5, ratio=2.0), record("b", 0.25)]
    run.write_metrics(tmp_path / "bench.prom", "data", records, [True, None])
    samples = {
        (s.name, s.labels["benchmark"]): s.value
        for family in text_string_to_metric_families((tmp_path / "bench.prom").read_text())
        for s in family.samples
    }
    assert samples == {
        ("hq_benchmark_seconds", "a"): 0.5,
        ("hq_benchmark_seconds", "b"): 0.25,
        ("hq_benchmark_ratio", "a"): 2.0,
        ("hq_benchmark_budget_met", "a"): 1.0,
    }
