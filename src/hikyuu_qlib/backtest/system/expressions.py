"""Signal conditions written as text (``hq system run --signal expr:"BUY ; SELL"``), compiled to polars.

The text is parsed with Python's ``ast`` into a small, closed language and never evaluated: only the
names, functions and operators below are accepted, anything else is an error naming it.

* bar columns: ``open high low close volume amount`` (also ``O H L C V``, any case);
* numbers, ``+ - * /``, comparisons ``< <= > >= == !=`` (chains allowed), ``and or not`` (or
  ``& | ~``), parentheses;
* indicators over the close (:mod:`hikyuu_qlib.factors.indicators`): ``MA(n)``, ``EMA(n)``,
  ``RSI(n)``, ``ATR(n)``, and the moving average of another term ``MA(x, n)``;
* ``REF(x, n)``: ``x`` ``n`` bars back; ``CROSS(a, b)``: ``a`` crosses above ``b`` on this bar
  (``a`` was < ``b`` on the previous bar and is > ``b`` now, as Hikyuu's ``CROSS``);
  ``ABS(x)``, ``MAX(a, b)``, ``MIN(a, b)``, ``HHV(x, n)``, ``LLV(x, n)`` (highest / lowest of the
  last ``n`` bars).

Everything is computed per code. Example: ``expr:"CROSS(MA(5), MA(20)) ; CROSS(MA(20), MA(5))"``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import polars as pl

from hikyuu_qlib.backtest.system.config import ExprSignal
from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.factors.indicators import atr, ema, rsi

_BY = "code"
COLUMNS = {
    "open": "open", "o": "open", "high": "high", "h": "high", "low": "low", "l": "low",
    "close": "close", "c": "close", "volume": "volume", "v": "volume", "amount": "amount",
}  # fmt: skip
_COMPARE: dict[type, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}
_ARITH: dict[type, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.BitAnd: lambda a, b: a & b,
    ast.BitOr: lambda a, b: a | b,
}


def expr_signal(text: str) -> ExprSignal:
    """``BUY ; SELL``: two conditions separated by ``;`` as an :class:`ExprSignal`."""
    parts = text.split(";")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise InvalidInputError(
            f"expression signal {text!r}: expected two conditions, BUY ; SELL "
            "(e.g. 'CROSS(MA(5), MA(20)) ; CROSS(MA(20), MA(5))')"
        )
    return ExprSignal(buy=condition(parts[0]), sell=condition(parts[1]))


def condition(text: str) -> pl.Expr:
    """One condition compiled to a polars expression over a bars frame (sorted by code, datetime)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidInputError(f"expression {text.strip()!r} does not parse: {exc.msg}") from None
    return _Compiler(text.strip()).term(tree.body)


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, what: str) -> InvalidInputError:
        return InvalidInputError(f"expression {self.text!r}: {what}")

    def term(self, node: ast.expr) -> pl.Expr:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            if isinstance(node.value, bool):
                return pl.lit(node.value)
            return pl.lit(float(node.value))
        if isinstance(node, ast.Name):
            column = COLUMNS.get(node.id.lower())
            if column is None:
                raise self.fail(f"unknown name {node.id!r}: use {', '.join(sorted(set(COLUMNS.values())))}")
            return pl.col(column)
        if isinstance(node, ast.UnaryOp):
            inner = self.term(node.operand)
            if isinstance(node.op, ast.USub):
                return -inner
            if isinstance(node.op, ast.UAdd):
                return inner
            return ~inner.cast(pl.Boolean)  # Not, Invert
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](self.term(node.left), self.term(node.right))
        if isinstance(node, ast.BoolOp):
            values = [self.term(v).cast(pl.Boolean) for v in node.values]
            out = values[0]
            for value in values[1:]:
                out = out & value if isinstance(node.op, ast.And) else out | value
            return out
        if isinstance(node, ast.Compare):
            left = self.term(node.left)
            result: pl.Expr | None = None
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                if type(op) not in _COMPARE:
                    raise self.fail(f"comparison {type(op).__name__} is not supported")
                right = self.term(right_node)
                part = _COMPARE[type(op)](left, right)
                result = part if result is None else result & part
                left = right
            assert result is not None
            return result
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            return self.call(node.func.id.upper(), node.args)
        raise self.fail(f"{ast.unparse(node)!r} is not supported")

    def window(self, node: ast.expr) -> int:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ) and node.value >= 1:
            return node.value
        raise self.fail(f"a window must be a whole number >= 1, got {ast.unparse(node)!r}")

    def call(self, name: str, args: list[ast.expr]) -> pl.Expr:
        n = len(args)
        if name == "MA" and n in (1, 2):
            x = pl.col("close") if n == 1 else self.term(args[0])
            w = self.window(args[-1])
            return _within(x.rolling_mean(w), w)
        if name == "EMA" and n == 1:
            return ema("close", self.window(args[0]), by=_BY)
        if name == "RSI" and n == 1:
            return rsi("close", self.window(args[0]), by=_BY)
        if name == "ATR" and n == 1:
            return atr(self.window(args[0]), by=_BY)
        if name == "REF" and n == 2:
            return _lag(self.term(args[0]), self.window(args[1]))
        if name in ("HHV", "LLV") and n == 2:
            x, w = self.term(args[0]), self.window(args[1])
            return _within(x.rolling_max(w) if name == "HHV" else x.rolling_min(w), w)
        if name == "CROSS" and n == 2:
            a, b = self.term(args[0]), self.term(args[1])
            return (_lag(a, 1) < _lag(b, 1)) & (a > b)
        if name == "ABS" and n == 1:
            return self.term(args[0]).abs()
        if name in ("MAX", "MIN") and n == 2:
            a, b = self.term(args[0]), self.term(args[1])
            return pl.max_horizontal(a, b) if name == "MAX" else pl.min_horizontal(a, b)
        known = "MA(n), MA(x, n), EMA(n), RSI(n), ATR(n), REF(x, n), CROSS(a, b), ABS(x), MAX(a, b), "
        raise self.fail(
            f"unknown function {name} of {n} argument(s): use {known}MIN(a, b), HHV(x, n), LLV(x, n)"
        )


def _lag(x: pl.Expr, n: int) -> pl.Expr:
    """``x`` ``n`` rows back within the code (null on its first ``n`` rows). The frame is sorted by code,
    so a plain shift is the code's own past whenever the code ``n`` rows back is the same."""
    return pl.when(pl.col(_BY).shift(n) == pl.col(_BY)).then(x.shift(n))


def _within(rolled: pl.Expr, window: int) -> pl.Expr:
    """A rolling result kept only where the window lies inside the row's code (its first ``window − 1``
    rows are null). Written without nesting window expressions, so that terms compose freely."""
    return pl.when(pl.col(_BY).shift(window - 1) == pl.col(_BY)).then(rolled)
