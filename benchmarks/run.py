"""Run a benchmark suite and write its results as JSON; check them against their budgets.

    python benchmarks/run.py SUITE [--quick] --json FILE [--check] [--metrics-file FILE.prom]

Each suite is a module ``benchmarks/suites/SUITE.py`` with ``run(quick: bool) -> list[Result]``.
``--check`` compares each result with its budget in ``benchmarks/budgets.toml`` and exits 1 when one is
missed. ``--metrics-file`` writes the results for Prometheus (node_exporter textfile format):
``hq_benchmark_seconds`` (our time), ``hq_benchmark_ratio`` (anchor time / ours, when there is an anchor)
and ``hq_benchmark_budget_met`` (1/0, when a budget applies), by suite and benchmark.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import logging
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result

SUITES_DIR = Path(__file__).resolve().parent / "suites"
BUDGETS = Path(__file__).resolve().parent / "budgets.toml"


def load_budgets(path: Path = BUDGETS) -> list[dict[str, Any]]:
    return list(tomllib.loads(path.read_text())["budget"])


def check(suite: str, record: dict[str, Any], budgets: list[dict[str, Any]]) -> tuple[bool | None, list[str]]:
    """Whether a result meets every budget that matches it (None: no budget), and what it missed."""
    matching = [b for b in budgets if b["suite"] == suite and fnmatch.fnmatchcase(record["name"], b["match"])]
    if not matching:
        return None, []
    missed: list[str] = []
    for budget in matching:
        if "min_ratio" in budget:
            ratio = record["ratio"]
            if ratio is None or ratio < budget["min_ratio"]:
                missed.append(f"ratio {ratio} < {budget['min_ratio']}")
        if "max_seconds" in budget and record["ours_s"] > budget["max_seconds"]:
            missed.append(f"{record['ours_s']:.6f}s > {budget['max_seconds']}s")
        for field, limit in budget.get("max_extra", {}).items():
            value = record["extra"].get(field)
            if value is None or value > limit:
                missed.append(f"{field} {value} > {limit}")
    return not missed, missed


def write_metrics(path: Path, suite: str, records: list[dict[str, Any]], met: list[bool | None]) -> None:
    """The results as Prometheus gauges in a node_exporter textfile (written atomically)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = ["suite", "benchmark"]
    seconds = Gauge(
        "hq_benchmark_seconds", "Our time of a benchmark (best round).", labels, registry=registry
    )
    ratio = Gauge(
        "hq_benchmark_ratio", "Anchor time / our time, measured in the same run.", labels, registry=registry
    )
    budget = Gauge(
        "hq_benchmark_budget_met", "1 when the result meets its budget.", labels, registry=registry
    )
    for record, ok in zip(records, met, strict=True):
        seconds.labels(suite, record["name"]).set(record["ours_s"])
        if record["ratio"] is not None:
            ratio.labels(suite, record["name"]).set(record["ratio"])
        if ok is not None:
            budget.labels(suite, record["name"]).set(1 if ok else 0)
    write_to_textfile(str(path), registry)


def available() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("suite", choices=available())
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--check", action="store_true", help="exit 1 when a result misses its budget")
    parser.add_argument(
        "--metrics-file", type=Path, help="write the results as Prometheus gauges (FILE.prom)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    module = importlib.import_module(f"suites.{args.suite}")
    started = time.perf_counter()
    results: list[Result] = module.run(quick=args.quick)
    records = [r.to_json() for r in results]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(records, indent=2, default=str))
    for r in records:
        ratio = "" if r["ratio"] is None else f"  ratio {r['ratio']:.1f}x (goal {r['goal_ratio']})"
        anchor = "" if r["anchor_s"] is None else f"  {r['anchor']} {r['anchor_s']:.4f}s"
        print(f"{r['name']:<60} ours {r['ours_s']:.4f}s{anchor}{ratio}", file=sys.stderr)
    print(
        f"suite {args.suite}: {len(records)} results in {time.perf_counter() - started:.1f}s -> {args.json}",
        file=sys.stderr,
    )
    budgets = load_budgets()
    verdicts = [check(args.suite, r, budgets) for r in records]
    if args.metrics_file is not None:
        write_metrics(args.metrics_file, args.suite, records, [ok for ok, _ in verdicts])
    if not args.check:
        return 0
    failed = 0
    for record, (ok, missed) in zip(records, verdicts, strict=True):
        state = "no budget" if ok is None else ("ok" if ok else "MISSED: " + "; ".join(missed))
        failed += ok is False
        print(f"budget {record['name']:<60} {state}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
