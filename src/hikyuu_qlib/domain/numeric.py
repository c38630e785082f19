"""Numeric constants shared by the factors, the processors and the backtest."""

from __future__ import annotations

#: The epsilon Qlib adds to denominators (its Alpha158 expressions, ``RobustZScoreNorm``'s MAD); also the
#: slack of a fraction checked against 1 (``FixedPercent``). Parity with Qlib needs exactly this value.
EPS = 1e-12
