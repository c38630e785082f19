"""The workflow file: strict keys, environment interpolation, run identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from hikyuu_qlib.domain import InvalidInputError, NotFoundError
from hikyuu_qlib.workflow.config import interpolate, load_workflow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflow_lightgbm_alpha158_csi300.yaml"


def test_the_example_validates_with_qlib_defaults() -> None:
    config = load_workflow(EXAMPLE, env={})
    assert config.source == "qlib:../shared/data/qlib_cn"
    assert config.processors.infer == []
    assert [p.name for p in config.processors.learn] == ["dropna_label", "cs_zscore"]
    assert (config.backtest.topk, config.backtest.n_drop) == (50, 5)
    assert config.segments["test"].end.year == 2020


def test_environment_variables_are_interpolated() -> None:
    config = load_workflow(EXAMPLE, env={"HQ_QLIB_DIR": "/data/q", "HQ_TRAIN": "2012-01-01:2012-12-31"})
    assert config.source == "qlib:/data/q"
    assert str(config.segments.train) == "2012-01-01:2012-12-31"
    assert interpolate("${A}-${B:-b}", {"A": "a"}) == "a-b"
    with pytest.raises(InvalidInputError, match="'MISSING'"):
        interpolate("${MISSING}", {})


def test_unknown_keys_and_bad_values_are_rejected_with_their_path(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  topk: 50", "  topk: 50\n  top_k: 10"))
    with pytest.raises(InvalidInputError, match=r"strategy\.top_k"):
        load_workflow(bad, env={})
    bad.write_text(text.replace("n_drop: 5", "n_drop: 60"))
    with pytest.raises(InvalidInputError, match="n_drop"):
        load_workflow(bad, env={})
    bad.write_text(text.replace("source: qlib:", "source: csv:"))
    with pytest.raises(InvalidInputError, match="source"):
        load_workflow(bad, env={})
    with pytest.raises(InvalidInputError, match="ordered"):
        load_workflow(EXAMPLE, env={"HQ_VALID": "2009-01-01:2009-12-31"})
    with pytest.raises(NotFoundError, match=r"nope\.yaml"):
        load_workflow(tmp_path / "nope.yaml")


def test_strategy_and_backtest_sections_are_one_backtest_config(tmp_path: Path) -> None:
    """The file's two sections build the engine's one :class:`BacktestConfig`: its defaults fill what the
    file leaves out, a key given in both sections is refused, and the document written back loads again."""
    import yaml

    from hikyuu_qlib.backtest.config import BacktestConfig

    config = load_workflow(EXAMPLE, env={})
    assert isinstance(config.backtest, BacktestConfig)
    assert config.backtest == BacktestConfig(topk=50, n_drop=5, benchmark="SH000300")
    text = EXAMPLE.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  open_cost: 0.0005", "  open_cost: 0.0005\n  topk: 20"))
    with pytest.raises(InvalidInputError, match="topk: given in both"):
        load_workflow(bad, env={})
    bad.write_text(text.replace("kind: topk_dropout", "kind: weights"))
    with pytest.raises(InvalidInputError, match=r"strategy\.kind: only 'topk_dropout'"):
        load_workflow(bad, env={})
    bad.write_text(text.replace("  min_cost: 5", "  min_cost: 5\n  init_cash: 1"))
    with pytest.raises(InvalidInputError, match=r"backtest\.init_cash"):
        load_workflow(bad, env={})
    written = tmp_path / "written.yaml"
    document = config.document()
    assert document["strategy"] == {
        "kind": "topk_dropout",
        "topk": 50,
        "n_drop": 5,
        "risk_degree": 0.95,
        "hold_thresh": 1,
        "only_tradable": False,
        "rebalance": "day",
    }
    assert "topk" not in document["backtest"]
    written.write_text(yaml.safe_dump(document, sort_keys=False))
    again = load_workflow(written, env={})
    assert again == config and again.run_id("v") == config.run_id("v")


def test_run_id_follows_config_and_data_but_not_outputs() -> None:
    a = load_workflow(EXAMPLE, env={})
    b = load_workflow(EXAMPLE, env={"HQ_RUNS_DIR": "/elsewhere"})
    c = load_workflow(EXAMPLE, env={"HQ_TEST": "2017-01-01:2019-12-31"})
    assert a.run_id("v1") == b.run_id("v1")
    assert a.run_id("v1") != a.run_id("v2")
    assert a.run_id("v1") != c.run_id("v1")


INJECTABLE = """\
source: qlib:${DATA_DIR:-/data/q}  # ${NOT_SET} in a comment is not interpolated
universe: csi300
segments:
  train: 2010-01-01:2014-12-31
  valid: 2015-01-01:2016-12-31
  test: 2017-01-01:2020-08-01
backtest:
  benchmark: ${BENCH:-SH000300}
  limit_threshold: ${LIMIT:-0.095}
"""


def test_a_variable_holding_yaml_adds_no_keys(tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(INJECTABLE)
    plain = load_workflow(path, env={})
    assert plain.backtest.limit_threshold == 0.095  # a default is converted to the field's type
    evil = "SH000300\n  stamp_tax: 0.5\nuniverse: all\noutputs: {dir: /tmp/elsewhere}"
    config = load_workflow(path, env={"BENCH": evil, "DATA_DIR": "/d\nuniverse: all"})
    assert config.backtest.stamp_tax == 0.0
    assert config.universe == "csi300"
    assert config.outputs == plain.outputs
    assert config.backtest.benchmark == evil  # the value stays one string
    assert config.source == "qlib:/d\nuniverse: all"
    with pytest.raises(InvalidInputError, match=r"backtest\.limit_threshold"):
        load_workflow(path, env={"LIMIT": "0.095\n  stamp_tax: 0.5"})
    with pytest.raises(InvalidInputError, match=r"workflow\.yaml: backtest\.benchmark: .*'BENCH'"):
        path.write_text(INJECTABLE.replace("${BENCH:-SH000300}", "${BENCH}"))
        load_workflow(path, env={})


def test_a_file_that_is_not_utf8_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(INJECTABLE.replace("csi300", "csi300 \xe9").encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"latin1\.yaml: not UTF-8 text"):
        load_workflow(path, env={})
