"""The MLP preset on raw Alpha158 (Qlib's DNN configuration feeds the network unnormalised features).

On the real store some rows have zero volume, so VMA/VSTD (``/ (volume + 1e-12)``) reach ~1e20: a batch
holding one of them overflows BatchNorm's float32 variance, the running variance becomes infinite and the
network scores every row the same (up to float rounding: the "IC" of such a model is rounding noise, which
is how the quick parity row got −0.04 against pyqlib's +0.03 from two constant predictors). The family
refuses such a fit and names ``qlib-mlp-alpha158-norm``, whose robust z-scored features train a network
whose scores vary on the same data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import Segments
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.dataset import matrix, prepare_frame
from hikyuu_qlib.modelling.presets import get_preset
from hikyuu_qlib.modelling.service import fit_prepared
from hikyuu_qlib.stores.qlib import QlibStore

SEGMENTS = Segments.parse("2016-01-01:2017-12-31", "2018-01-01:2018-06-30", "2018-07-01:2019-06-30")
PRESET = get_preset("qlib-mlp-alpha158")
NORM = get_preset("qlib-mlp-alpha158-norm")
PARAMS = {**PRESET.params, "max_steps": 40, "seed": 0, "num_threads": 2}


@pytest.fixture(scope="module")
def raw(qlib_dir: Path) -> pl.DataFrame:
    pytest.importorskip("torch")
    store = QlibStore.open(qlib_dir)
    full = Universe.from_store(store, "csi300")
    members = full.members_between(SEGMENTS.span())
    codes = members[:: len(members) // 40][:40]  # 40 codes spread over CSI300's members
    universe = Universe("csi300-spread40", full.membership.filter(pl.col("code").is_in(codes)))
    return compute_features(store, universe, SEGMENTS.span(), "alpha158", label=True)


def test_raw_alpha158_overflows_batchnorm_and_is_refused(raw: pl.DataFrame) -> None:
    data = prepare_frame(
        raw, SEGMENTS, infer=PRESET.infer, learn=PRESET.learn, process=PRESET.process, drop=PRESET.drop
    )
    train = matrix(data.view("train"), data.features)
    assert np.nanmax(np.abs(train)) > 1e19  # the cause is in the data: zero-volume days
    with pytest.raises(InvalidInputError, match=r"BatchNorm.*preset qlib-mlp-alpha158-norm"):
        fit_prepared(ModelType.MLP, data, PARAMS, 0, 2, 1, 1)


def test_norm_preset_trains_a_network_whose_scores_vary(raw: pl.DataFrame) -> None:
    assert NORM.params == PRESET.params and NORM.drop == PRESET.drop  # the same network, other processors
    assert NORM.process == "append"  # the learn view comes from the normalised features
    data = prepare_frame(
        raw, SEGMENTS, infer=NORM.infer, learn=NORM.learn, process=NORM.process, drop=NORM.drop
    )
    train = matrix(data.view("train"), data.features)
    assert np.nanmax(np.abs(train)) <= 3.0  # clipped robust z-scores: the zero-volume days are bounded
    result = fit_prepared(ModelType.MLP, data, PARAMS, 0, 2, 1, 1)
    scores = result.model.predict(matrix(data.view("test", "infer"), data.features))
    assert np.isfinite(scores).all()
    assert np.unique(scores).size > scores.size // 2
    assert float(np.std(scores)) > 1e-4
