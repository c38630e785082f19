"""Segments: one type for the CLI, the workflow file, training and the model record; it owns the rule that
the segments are ordered and disjoint."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from hikyuu_qlib.domain import DateRange, InvalidInputError, Segments
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.modelling.service import TrainSpec
from hikyuu_qlib.registry.codec import stored_segments
from hikyuu_qlib.workflow.config import load_workflow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflow_lightgbm_alpha158_csi300.yaml"


def test_texts_parse_to_ranges_and_the_segments_read_as_a_mapping_in_order() -> None:
    segments = Segments.parse("2016-01-01:2016-12-31", None, "2017-04-01:2017-06-30")
    assert segments.train == DateRange.of("2016-01-01", "2016-12-31")
    assert segments.valid is None
    assert list(segments) == ["train", "test"] and len(segments) == 2
    assert "valid" not in segments and "test" in segments
    assert segments["test"].end == dt.datetime(2017, 6, 30, 23, 59, 59)
    with pytest.raises(KeyError):
        segments["valid"]
    assert segments.span() == DateRange.of("2016-01-01", "2017-06-30")
    assert Segments.of({"train": "2016-01-01:2016-12-31", "test": segments["test"]}) == segments


@pytest.mark.parametrize(
    ("train", "valid", "test"),
    [
        ("2016-01-01:2016-12-31", "2016-12-31:2017-03-31", None),  # the same day twice
        ("2016-01-01:2016-12-31", "2015-01-01:2015-06-30", None),  # valid before train
        ("2016-01-01:2016-12-31", None, "2016-06-01:2017-06-30"),  # test inside train, valid left out
        (None, "2017-01-01:2017-03-31", "2016-01-01:2016-06-30"),
    ],
)
def test_segments_that_overlap_or_come_out_of_order_are_refused(
    train: str | None, valid: str | None, test: str | None
) -> None:
    with pytest.raises(InvalidInputError, match="ordered and disjoint"):
        Segments.parse(train, valid, test)
    spans = {k: DateRange.parse(v) for k, v in (("train", train), ("valid", valid), ("test", test)) if v}
    with pytest.raises(InvalidInputError, match="ordered and disjoint"):
        Segments(**spans)
    with pytest.raises(InvalidInputError, match="ordered and disjoint"):
        TrainSpec("x", spans)  # type: ignore[arg-type]  # a mapping given to a use case is checked too
    with pytest.raises(InvalidInputError, match="ordered and disjoint"):
        Model.new("x", "lightgbm", segments={k: [v.start.date(), v.end.date()] for k, v in spans.items()})


def test_bad_texts_and_names_say_which_segment() -> None:
    with pytest.raises(InvalidInputError, match="valid segment: invalid date range 'nope'"):
        Segments.parse("2016-01-01:2016-12-31", "nope")
    with pytest.raises(InvalidInputError, match=r"unknown segment\(s\) \['holdout'\]"):
        Segments.of({"holdout": "2016-01-01:2016-12-31"})
    with pytest.raises(InvalidInputError, match="expected a DateRange"):
        Segments(train="2016-01-01:2016-12-31")  # type: ignore[arg-type]


def test_the_record_form_is_the_stored_json_of_dates() -> None:
    stored = {
        "train": ["2010-01-01", "2014-12-31"],
        "valid": ["2015-01-01", "2015-12-31"],
        "test": ["2016-01-01", "2017-12-31"],
    }
    segments = Segments.from_json(stored)
    assert segments.train == DateRange.of("2010-01-01", "2014-12-31")
    assert segments.to_json() == stored
    assert (
        Segments.parse("2010-01-01:2014-12-31", "2015-01-01:2015-12-31", "2016-01-01:2017-12-31") == segments
    )
    assert Model.new("m", "lightgbm", segments=stored).segments == segments
    with pytest.raises(InvalidInputError, match="inverted train segment"):
        Segments.from_json({"train": ["2015-01-01", "2010-01-01"]})
    # a record keeps whole days, so what it holds is what the registry gives back
    intraday = Segments(train=DateRange(dt.datetime(2010, 1, 4, 9, 30), dt.datetime(2014, 12, 31, 15)))
    assert Model.new("m", "lightgbm", segments=intraday).segments == Segments.parse("2010-01-04:2014-12-31")


def test_a_stored_record_reads_back_even_if_its_segments_overlap() -> None:
    # the registry does not re-check what it stored: a record saved with overlapping spans still reads
    overlapping = {"train": ["2010-01-01", "2014-12-31"], "test": ["2014-01-01", "2015-12-31"]}
    with pytest.raises(InvalidInputError, match="ordered and disjoint"):
        Segments.from_json(overlapping)
    read = stored_segments(overlapping)
    assert read.to_json() == overlapping and list(read) == ["train", "test"]


def test_the_workflow_file_uses_the_same_type_and_rule() -> None:
    config = load_workflow(EXAMPLE, env={})
    assert isinstance(config.segments, Segments)
    assert config.segments == Segments.parse(
        "2010-01-01:2014-12-31", "2015-01-01:2016-12-31", "2017-01-01:2020-08-01"
    )
    # the file's form is kept: START:END texts (so the run id of a file does not change)
    assert config.model_dump(mode="json")["segments"] == {
        "train": "2010-01-01:2014-12-31",
        "valid": "2015-01-01:2016-12-31",
        "test": "2017-01-01:2020-08-01",
    }
    with pytest.raises(InvalidInputError, match="ordered and disjoint"):
        load_workflow(EXAMPLE, env={"HQ_TEST": "2016-06-01:2020-08-01"})
    with pytest.raises(ValidationError, match="missing test"):
        config.model_validate(
            {
                "source": config.source,
                "segments": {"train": "2010-01-01:2014-12-31", "valid": "2015-01-01:2016-12-31"},
            }
        )
