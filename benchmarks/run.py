"""Run a benchmark suite and write its results as JSON.

    python benchmarks/run.py SUITE [--quick] --json FILE

Each suite is a module ``benchmarks/suites/SUITE.py`` with ``run(quick: bool) -> list[Result]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result

SUITES_DIR = Path(__file__).resolve().parent / "suites"


def available() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("suite", choices=available())
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
