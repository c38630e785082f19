"""The command line starts without the heavy libraries that only some commands need: each ``hq`` call
(``hq --help``, ``hq data stocks``, ``hq model list``) pays the imports of its process."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numba", "scipy", "lightgbm", "xgboost", "catboost", "torch", "sklearn", "fastapi", "ray", "pandas")


def test_importing_the_cli_loads_no_kernel_or_model_library() -> None:
    code = f"import json, sys, hikyuu_qlib.cli.main; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_lazy_package_names_resolve_to_their_modules() -> None:
    import hikyuu_qlib.backtest as backtest
    import hikyuu_qlib.backtest.system as system
    from hikyuu_qlib.backtest.engine import run_topk_backtest
    from hikyuu_qlib.backtest.system.engine import TradingSystem

    assert backtest.run_topk_backtest is run_topk_backtest
    assert system.TradingSystem is TradingSystem
    for package in (backtest, system):
        for name in package.__all__:
            assert getattr(package, name) is not None
    try:
        backtest.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "hikyuu_qlib.backtest" in str(error) and "no_such_name" in str(error)
    else:
        raise AssertionError("an unknown name resolved")
