"""LightGBM training, fed exactly as Qlib's ``LGBModel.fit`` feeds it.

Qlib builds ``lgb.Dataset(x.values, label=y)`` for ``train`` and ``valid`` (float32 features in
(datetime, instrument) order, the squeezed label), trains with ``valid_sets=[train, valid]`` named
``train``/``valid``, ``early_stopping(50)`` (which skips the training set) and ``log_evaluation(20)``.
The booster keeps every tree; prediction and the saved model use the best iteration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.ports import Progress

if TYPE_CHECKING:
    import lightgbm

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]


@dataclass
class TrainResult:
    booster: lightgbm.Booster
    best_iteration: int
    rounds: int  # rounds run (with early stopping, more than the best iteration the booster keeps)
    seconds: float
    evals: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def train_lightgbm(
    train: tuple[F32 | Any, F32],
    valid: tuple[F32 | Any, F32] | None,
    params: Mapping[str, Any],
    *,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 50,
    log_period: int = 20,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a booster on ``(x, y)`` pairs; early stopping on ``valid`` when given. ``x`` is a float32
    matrix or a :class:`lightgbm.Sequence` of its rows."""
    import lightgbm as lgb

    x, y = train
    if len(x) == 0:
        raise InvalidInputError("empty training data: check the universe and the train segment")
    own = {} if isinstance(x, np.ndarray) else sampling_params(params)
    sets = [lgb.Dataset(x, label=y, params=own or None)]
    names = ["train"]
    if valid is not None:
        if len(valid[0]) == 0:
            raise InvalidInputError("empty validation data: check the valid segment")
        sets.append(lgb.Dataset(valid[0], label=valid[1], params=own or None))
        names.append("valid")
    evals: dict[str, Any] = {}
    callbacks: list[Any] = [lgb.record_evaluation(evals), _log_callback(log_period)]
    if valid is not None:
        callbacks.insert(0, lgb.early_stopping(early_stopping_rounds, verbose=False))
    if progress is not None:
        callbacks.append(_progress_callback(progress, num_boost_round))
    started = time.perf_counter()
    booster = lgb.train(
        dict(params),
        sets[0],
        num_boost_round=num_boost_round,
        valid_sets=sets,
        valid_names=names,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - started
    rounds = rounds_run(evals, booster)
    best = int(booster.best_iteration or rounds)
    if valid is not None and rounds < num_boost_round:
        log.info(
            "lightgbm: early stopping after %d of %d rounds (no better valid score in %d), best iteration %d, %.1fs",
            rounds,
            num_boost_round,
            early_stopping_rounds,
            best,
            seconds,
        )
    else:
        log.info("lightgbm: %d rounds, best iteration %d, %.1fs", rounds, best, seconds)
    if progress is not None:
        progress(rounds, rounds, f"best iteration {best}")  # the bar ends at the rounds run
    return TrainResult(booster, best, rounds, seconds, evals)


#: LightGBM's names for ``seed`` and for the seed its bin sample is drawn with.
SEED_ALIASES = ("seed", "random_seed", "random_state")
DATA_SEED_ALIASES = ("data_random_seed", "data_seed")


def sampling_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset parameter a :class:`lightgbm.Sequence` needs to sample its bin rows as a matrix does.

    LightGBM derives ``data_random_seed`` from ``seed`` in its C++ config, which a matrix is binned
    with; a Sequence draws its sample rows in Python with the dataset's own parameters, where ``seed`` is
    not one, so past ``bin_construct_sample_cnt`` rows (200,000 by default) it drew other rows, other bin
    boundaries and another model. Given the derived seed, the trees are the same. The derivation is
    LightGBM's ``Random(seed).NextShort(0, 32767)``: one step of its linear congruential generator."""
    if any(k in params for k in DATA_SEED_ALIASES):
        return {}
    seed = next((params[k] for k in SEED_ALIASES if k in params), None)
    if seed is None:
        return {}
    state = (214013 * (int(seed) & 0xFFFFFFFF) + 2531011) & 0xFFFFFFFF
    return {"data_random_seed": ((state >> 16) & 0x7FFF) % 32767}


def rounds_run(evals: Mapping[str, Mapping[str, Sequence[float]]], booster: lightgbm.Booster) -> int:
    """Boosting rounds run: one evaluation each (after early stopping the booster keeps only the best trees)."""
    for metrics in evals.values():
        for values in metrics.values():
            return len(values)
    return int(booster.current_iteration())


def _log_callback(period: int) -> Any:
    def callback(env: Any) -> None:
        if period > 0 and (env.iteration + 1) % period == 0 and env.evaluation_result_list:
            text = "  ".join(f"{d}'s {m}: {v:.6f}" for d, m, v, *_ in env.evaluation_result_list)
            log.debug("[%d] %s", env.iteration + 1, text)

    callback.order = 10  # type: ignore[attr-defined]
    return callback


def _progress_callback(progress: Progress, total: int) -> Any:
    def callback(env: Any) -> None:
        last = env.evaluation_result_list[-1] if env.evaluation_result_list else None
        item = f"{last[0]} {last[1]} {last[2]:.5f}" if last else ""
        progress(env.iteration + 1, total, item)

    callback.order = 40  # type: ignore[attr-defined]
    return callback


def predict(booster: lightgbm.Booster, x: F32, num_threads: int | None = None) -> npt.NDArray[np.float64]:
    """Scores at the best iteration (a loaded model holds only those trees)."""
    if x.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    kwargs: dict[str, Any] = {} if num_threads is None else {"num_threads": num_threads}
    return np.asarray(booster.predict(x, **kwargs), dtype=np.float64)
