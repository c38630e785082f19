"""The parts of rolling runs and sweeps that need no data: windows on a calendar, the registry rule for
a Ray cluster, the shared features read once per process, sweep parameters, Ray as an optional extra."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.domain.segments import Segments
from hikyuu_qlib.executors.base import check_registry_for, is_remote
from hikyuu_qlib.rolling.windows import RollingSpec, make_windows
from hikyuu_qlib.workflow.sweep import combinations, parse_param

#: 200 weekdays from 2020-01-01: a trading calendar without holidays.
CALENDAR = [d for d in (dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(290)) if d.weekday() < 5][
    :200
]
SEGMENTS = Segments.of(
    {"train": f"{CALENDAR[0]}:{CALENDAR[79]}", "valid": f"{CALENDAR[80]}:{CALENDAR[99]}",
     "test": f"{CALENDAR[101]}:{CALENDAR[154]}"}
)  # fmt: skip


def _days(span: DateRange) -> list[dt.date]:
    return [d for d in CALENDAR if span.start.date() <= d <= span.end.date()]


@pytest.mark.parametrize("mode", ["sliding", "expanding"])
def test_windows_tile_the_test_span_and_fit_before_each_slice(mode: str) -> None:
    windows = make_windows(RollingSpec(step=20, mode=mode), SEGMENTS, CALENDAR)
    tested = [d for w in windows for d in _days(w.test)]
    assert tested == _days(SEGMENTS["test"])  # no overlap, no gap, in order
    assert [len(_days(w.test)) for w in windows] == [20, 20, 14]  # the last slice ends with the span
    first = windows[0].segments
    assert first["train"] == SEGMENTS["train"]
    assert first["valid"].end.date() == CALENDAR[99]  # the gap day (CALENDAR[100]) is left out
    for w in windows:
        test_start = CALENDAR.index(w.test.start.date())
        assert CALENDAR.index(w.segments["valid"].end.date()) == test_start - 2  # gap 1
        assert len(_days(w.segments["valid"])) == 20
    train_starts = [w.segments["train"].start.date() for w in windows]
    if mode == "sliding":
        assert train_starts == [CALENDAR[0], CALENDAR[20], CALENDAR[40]]
        assert {len(_days(w.segments["train"])) for w in windows} == {80}
    else:
        assert set(train_starts) == {CALENDAR[0]}
        assert [len(_days(w.segments["train"])) for w in windows] == [80, 100, 120]


def test_window_lengths_from_the_rolling_block_count_back_from_the_test_start() -> None:
    spec = RollingSpec(step=50, train_days=30, valid_days=10, gap=2)
    (window, second) = make_windows(spec, SEGMENTS, CALENDAR)
    test_start = CALENDAR.index(window.test.start.date())
    valid = [CALENDAR.index(d) for d in _days(window.segments["valid"])]
    train = [CALENDAR.index(d) for d in _days(window.segments["train"])]
    assert valid == list(range(test_start - 12, test_start - 2))
    assert train == list(range(test_start - 42, test_start - 12))
    assert len(_days(second.test)) == 4


def test_windows_that_cannot_fit_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="fewer than 20 trading days"):
        make_windows(RollingSpec(train_days=200), SEGMENTS, CALENDAR)
    with pytest.raises(InvalidInputError, match="needs a test span"):
        make_windows(RollingSpec(), Segments.of({"train": f"{CALENDAR[0]}:{CALENDAR[99]}"}), CALENDAR)


@pytest.mark.parametrize(
    ("address", "remote"),
    [(None, False), ("local", False), ("auto", False), ("ray://127.0.0.1:10001", False),
     ("ray://localhost:10001", False), ("ray://10.1.2.3:10001", True), ("ray://head:10001", True),
     ("10.1.2.3:6379", True)],
)  # fmt: skip
def test_a_cluster_beyond_this_machine_needs_a_postgresql_registry(address: str | None, remote: bool) -> None:
    assert is_remote(address) is remote
    check_registry_for(address, "postgresql://hq@db/hq")
    if remote:
        with pytest.raises(InvalidInputError, match="PostgreSQL"):
            check_registry_for(address, "sqlite:///tmp/registry.db")
    else:
        check_registry_for(address, "sqlite:///tmp/registry.db")


def test_ray_named_by_ray_address_is_checked_as_that_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from hikyuu_qlib.executors import open_executor

    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    with pytest.raises(InvalidInputError, match=r"10\.1\.2\.3"):
        open_executor("ray", registry_url="sqlite:///tmp/registry.db")
    with pytest.raises(InvalidInputError, match="unknown executor"):
        open_executor("spark", registry_url="sqlite:///tmp/registry.db")


@dataclass
class CountingHandle:
    key: str
    frame: pl.DataFrame
    loads: list[str] = field(default_factory=list)

    def load(self) -> pl.DataFrame:
        self.loads.append(self.key)
        return self.frame


def test_a_worker_process_reads_the_shared_features_once_per_handle() -> None:
    from hikyuu_qlib.rolling.worker import close_contexts, load_shared

    frame = pl.DataFrame({"x": [1.0, 2.0]})
    first, second = CountingHandle("a", frame), CountingHandle("b", frame)
    try:
        assert load_shared(first) == (frame, True)
        assert load_shared(first)[1] is False and load_shared(first)[1] is False
        assert load_shared(second)[1] is True  # another run's features replace the first
        assert load_shared(first)[1] is True
        assert first.loads == ["a", "a"] and second.loads == ["b"]
        assert load_shared(frame) == (frame, False)  # the inline executor hands the frame itself
        with pytest.raises(TypeError, match="int"):
            load_shared(3)
    finally:
        close_contexts()


def test_the_shared_features_file_is_written_once_and_read_whole(tmp_path: Path) -> None:
    from hikyuu_qlib.executors.base import write_shared

    frame = pl.DataFrame({"x": pl.Series(range(100_000), dtype=pl.Float64), "y": list(range(100_000))})
    handle = write_shared(frame, tmp_path / "shared" / "f.arrow")
    loaded = handle.load()
    assert loaded.equals(frame) and loaded.n_chunks() == 1
    assert write_shared(frame.head(3), tmp_path / "shared" / "f.arrow").load().height == 100_000  # kept


def test_sweep_parameters_and_their_combinations() -> None:
    assert parse_param("num_leaves=64,128") == ("num_leaves", [64, 128])
    assert parse_param("learning_rate=0.05, 0.1") == ("learning_rate", [0.05, 0.1])
    assert parse_param("boosting=gbdt,dart") == ("boosting", ["gbdt", "dart"])
    for bad in ("num_leaves", "=1,2", "num_leaves="):
        with pytest.raises(InvalidInputError, match="NAME=V1,V2"):
            parse_param(bad)
    grid = {"b": [1, 2], "a": [0.1, 0.2, 0.3]}
    every = combinations(grid, "grid", None, 0)
    assert len(every) == 6 and every[0] == {"a": 0.1, "b": 1}
    drawn = combinations(grid, "random", 4, 7)
    assert len(drawn) == 4 and len({tuple(sorted(c.items())) for c in drawn}) == 4
    assert drawn == combinations(grid, "random", 4, 7)  # the seed decides
    with pytest.raises(InvalidInputError, match="--trials"):
        combinations(grid, "random", None, 0)


def test_the_local_executor_needs_no_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # import ray fails, as without the extra
        "from hikyuu_qlib.domain import InvalidInputError\n"
        "from hikyuu_qlib.executors import open_executor\n"
        "pool = open_executor('local', registry_url='sqlite:///x.db', workers=1); pool.close()\n"
        "try:\n"
        "    open_executor('ray', registry_url='sqlite:///x.db')\n"
        "except InvalidInputError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pip install 'hikyuu-qlib[ray]'" in proc.stdout
