"""Value objects: codes, enums, date ranges, source specs."""

from __future__ import annotations

import datetime as dt

import pytest

from hikyuu_qlib.domain import (
    Adjust,
    DateRange,
    InvalidCodeError,
    InvalidDateRangeError,
    InvalidInputError,
    InvalidSourceError,
    KType,
    Market,
    StockCode,
    StockType,
    UnsupportedKTypeError,
)
from hikyuu_qlib.stores.source import SourceSpec, SyntheticParams


@pytest.mark.parametrize(
    "text", ["sh600000", "SH600000", "600000.SH", "SH.600000", " sh.600000 ", "600000.sh"]
)
def test_code_spellings_share_one_canonical_form(text: str) -> None:
    code = StockCode.parse(text)
    assert str(code) == "SH600000"
    assert code.market is Market.SH
    assert code.symbol == "600000"


def test_code_conversions() -> None:
    code = StockCode.parse("000001.SZ")
    assert code.qlib_instrument == "SZ000001"
    assert code.qlib_folder == "sz000001"
    assert code.hikyuu_table == "SZ000001"
    assert code.tdx_name == "sz000001"
    assert StockCode.parse(code) is code


@pytest.mark.parametrize("text", ["", "600000", "XX600000", "SH60000", "SH6000000", "600000-SH", "SH_600000"])
def test_bad_codes_raise_quoting_the_input(text: str) -> None:
    with pytest.raises(InvalidCodeError) as info:
        StockCode.parse(text)
    assert repr(text) in str(info.value) or repr(text.strip()) in str(info.value)


def test_codes_sort_and_hash() -> None:
    codes = {StockCode.parse("SZ000002"), StockCode.parse("sz000002"), StockCode.parse("SH600000")}
    assert sorted(str(c) for c in codes) == ["SH600000", "SZ000002"]


def test_enums_parse_aliases_and_reject_unknown() -> None:
    assert KType.parse("5min") is KType.MIN5
    assert KType.parse("Day") is KType.DAY
    assert KType.WEEK.is_period_of_day and not KType.DAY.is_intraday and KType.MIN.is_intraday
    assert Adjust.parse("qfq") is Adjust.FORWARD
    assert Adjust.parse("hfq") is Adjust.BACKWARD
    assert Market.parse("bj") is Market.BJ
    assert StockType.parse("a_share") is StockType.A_SHARE
    assert StockType.parse("8") is StockType.CHINEXT
    with pytest.raises(UnsupportedKTypeError, match="'tick'"):
        KType.parse("tick")
    with pytest.raises(InvalidInputError, match="'sideways'"):
        Adjust.parse("sideways")
    with pytest.raises(InvalidInputError, match="'NY'"):
        Market.parse("NY")
    with pytest.raises(InvalidInputError, match="'bond9'"):
        StockType.parse("bond9")


def test_date_range_rules() -> None:
    r = DateRange.of("2011-01-01", "20111231")
    assert r.start == dt.datetime(2011, 1, 1)
    assert r.end == dt.datetime(2011, 12, 31, 23, 59, 59)
    assert r.contains(dt.datetime(2011, 12, 31, 15))
    assert str(DateRange.parse("2010-01-01:2014-12-31")) == "2010-01-01:2014-12-31"
    with pytest.raises(InvalidDateRangeError, match="inverted"):
        DateRange.of("2012-01-01", "2011-01-01")
    with pytest.raises(InvalidDateRangeError, match="'2011-13-01'"):
        DateRange.of("2011-13-01")
    with pytest.raises(InvalidDateRangeError, match="START:END"):
        DateRange.parse("2011")


def test_source_specs() -> None:
    assert SourceSpec.parse("hikyuu:/data/stock").kind == "hikyuu"
    assert str(SourceSpec.parse("qlib:/q")) == "qlib:/q"
    assert SourceSpec.parse("synthetic").synthetic == SyntheticParams()
    spec = SourceSpec.parse("synthetic:42?stocks=50&years=2")
    assert (spec.synthetic.seed, spec.synthetic.stocks, spec.synthetic.years) == (42, 50, 2)
    assert SourceSpec.parse(str(spec)) == spec
    for bad in ["csv:/x", "hikyuu:", "synthetic:abc", "synthetic:1?colour=red", "synthetic:1?stocks=0"]:
        with pytest.raises(InvalidSourceError):
            SourceSpec.parse(bad)


def test_settings_read_env_and_config_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hikyuu_qlib.app import resolve_source
    from hikyuu_qlib.settings import Settings

    config = tmp_path / "hq.toml"
    config.write_text('source = "qlib:/from/config"\nio_workers = 3\n')
    monkeypatch.setenv("HQ_CONFIG", str(config))
    monkeypatch.delenv("HQ_SOURCE", raising=False)
    settings = Settings()
    assert settings.source == "qlib:/from/config" and settings.io_workers == 3
    monkeypatch.setenv("HQ_SOURCE", "hikyuu:/from/env")
    assert Settings().source == "hikyuu:/from/env"
    assert str(resolve_source(None, Settings())) == "hikyuu:/from/env"
    assert str(resolve_source("synthetic:3", Settings())) == "synthetic:3"


def test_the_service_literals_name_every_enum_value() -> None:
    """The API's parameter schemas spell the enums out; they must stay the enums' values."""
    from typing import get_args

    from hikyuu_qlib.domain import Adjust, KType, StockType
    from hikyuu_qlib.domain.model import ModelStatus, ModelType
    from hikyuu_qlib.service.routers import market, models

    assert set(get_args(market.KTypeName)) == {k.value for k in KType}
    assert set(get_args(market.AdjustName)) == {a.value for a in Adjust}
    assert set(get_args(market.StockTypeName)) == {t.name.lower() for t in StockType}
    assert set(get_args(models.StatusName)) == {s.value for s in ModelStatus}
    assert set(get_args(models.TypeName)) == {t.value for t in ModelType}
