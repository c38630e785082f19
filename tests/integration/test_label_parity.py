"""The learn label (DropnaLabel, then CSZScoreNorm of the label) against pyqlib's, bit for bit, on the real
Qlib store: pyqlib's raw label (equal to ours cell for cell: ``test_alpha158_parity``) through our
processors and through pyqlib's handler's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.conftest import pyqlib_reference
from tests.pyqlib_references import LABEL as REFERENCE

from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.processors import CSZScoreNorm, DropnaLabel, ProcessorChain

pytestmark = pytest.mark.qlib


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest, qlib_dir: Path) -> dict[str, pl.DataFrame]:
    """pyqlib's label, raw and after its learn processors (cached: see ``tests/pyqlib_references.py``)."""
    frames = pyqlib_reference(request, qlib_dir, REFERENCE)
    return frames


def _bits(frame: pl.DataFrame) -> np.ndarray:
    values = frame[LABEL].to_numpy()
    assert values.dtype == np.float32
    return values.view(np.uint32)


def test_learn_label_is_pyqlibs_bit_for_bit(reference: dict[str, pl.DataFrame]) -> None:
    raw, expected = reference["raw"], reference["learn"]
    # dates hold more than NumPy's 128-value block, so the pairwise sums split
    assert raw.group_by("datetime").len()["len"].max() > 128  # type: ignore[operator]
    shuffled = raw.sample(fraction=1.0, shuffle=True, seed=7)  # our row order must not matter
    chain = ProcessorChain([DropnaLabel(), CSZScoreNorm([LABEL])])
    ours = chain.transform(shuffled).sort("code", "datetime")
    assert ours.schema[LABEL] == pl.Float32
    assert ours.select("code", "datetime").equals(expected.select("code", "datetime"))
    differ = int((_bits(ours) != _bits(expected)).sum())
    assert differ == 0, f"{differ} of {ours.height} labels differ from pyqlib's"


def test_float64_arithmetic_would_differ(reference: dict[str, pl.DataFrame]) -> None:
    """The comparison has teeth: the z-score in float64, rounded to float32, misses pyqlib's label by one
    ulp in many cells."""
    raw, expected = DropnaLabel().transform(reference["raw"]), reference["learn"]
    wide = CSZScoreNorm([LABEL]).transform(raw.with_columns(pl.col(LABEL).cast(pl.Float64)))
    wide = wide.with_columns(pl.col(LABEL).cast(pl.Float32)).sort("code", "datetime")
    assert (_bits(wide) != _bits(expected)).mean() > 0.05
