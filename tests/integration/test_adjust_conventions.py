"""The README's figures on Hikyuu's affine forward adjustment against a Qlib export's one factor per day
(SH600000 on 2011-06-01, before its 2011-06-03 bonus shares and cash dividend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hikyuu_qlib.domain import Adjust, DateRange
from hikyuu_qlib.stores.export import export_qlib
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.qlib import QlibStore

DAY = DateRange.of("2011-06-01", "2011-06-01")
#: The README's table: traded, Hikyuu forward, exported Qlib price.
FIGURES = {
    "open": (13.80, 10.492308, 10.491770),
    "high": (13.88, 10.553846, 10.552592),
    "low": (13.69, 10.407692, 10.408140),
    "close": (13.74, 10.446154, 10.446154),
}


def test_readme_figures(hikyuu_dir: Path, tmp_path: Path) -> None:
    hikyuu = HikyuuStore.open(hikyuu_dir)
    try:
        report = export_qlib(hikyuu, tmp_path / "qlib", adjust=Adjust.FORWARD, codes=["SH600000"])
        assert report.ok == ["SH600000"] and not report.rebased
        traded = hikyuu.read_bars("SH600000", dates=DAY).row(0, named=True)
        # forward adjustment over the whole history (to 2011-12-06), as the export adjusts
        forward = hikyuu.read_bars("SH600000", adjust=Adjust.FORWARD, dates=DateRange.of("2011-06-01"))
        fwd = forward.row(0, named=True)
        # within a one-day query no later event applies: the traded prices
        same_day = hikyuu.read_bars("SH600000", adjust=Adjust.FORWARD, dates=DAY).row(0, named=True)
    finally:
        hikyuu.close()
    exported = QlibStore.open(tmp_path / "qlib").features(
        ["SH600000"], ["open", "high", "low", "close", "factor"], DAY
    )
    qlib = exported.row(0, named=True)
    change, bonus = 0.3, 0.16  # 3 bonus shares and 1.6 yuan per 10 shares
    for name, (p, hikyuu_fwd, qlib_price) in FIGURES.items():
        assert traded[name] == pytest.approx(p, abs=1e-9) and same_day[name] == traded[name]
        assert fwd[name] == pytest.approx(hikyuu_fwd, abs=5e-7)
        assert fwd[name] == pytest.approx((p - bonus) / (1 + change), abs=1e-9)  # affine
        assert qlib[name] == pytest.approx(qlib_price, abs=5e-6)  # float32 bins
        assert qlib[name] == pytest.approx(p * qlib["factor"], rel=1e-6)  # one factor for the whole bar
        gap = bonus * (1 - p / traded["close"]) / (1 + change)
        assert qlib[name] - fwd[name] == pytest.approx(gap, abs=5e-6)
    assert qlib["factor"] == pytest.approx(0.7602732, abs=1e-7)
    assert traded["volume"] == 43_373_200 and fwd["volume"] == pytest.approx(43_373_200 * 1.3)
