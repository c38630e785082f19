"""The one mapping from errors to exit codes and one-line messages, and the human rendering of values."""

from __future__ import annotations

import datetime as dt
import errno
import sqlite3
from pathlib import Path

import polars as pl

from hikyuu_qlib.cli.errors import (
    AllFailedError,
    ExitCode,
    error_message,
    exit_code_of,
    failures_exit_code,
    outcome_exit_code,
)
from hikyuu_qlib.cli.output import display, field_lines, tsv_text, with_type_names
from hikyuu_qlib.domain import errors as domain_errors


def test_every_kind_of_failure_has_its_code() -> None:
    assert exit_code_of(domain_errors.InvalidCodeError("x")) == ExitCode.INVALID_INPUT
    assert exit_code_of(domain_errors.UnknownCodeError("x")) == ExitCode.NOT_FOUND
    assert exit_code_of(domain_errors.DataFormatError("x")) == ExitCode.DATA_FORMAT
    assert exit_code_of(domain_errors.RegistryUnavailableError("x")) == ExitCode.FAILURE
    assert exit_code_of(FileNotFoundError(errno.ENOENT, "No such file", "/x")) == ExitCode.NOT_FOUND
    assert exit_code_of(IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp")) == ExitCode.INVALID_INPUT
    assert exit_code_of(OSError(errno.ENOSPC, "No space left on device")) == ExitCode.FAILURE
    bad_text = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    assert exit_code_of(bad_text) == ExitCode.INVALID_INPUT
    assert exit_code_of(sqlite3.DatabaseError("file is not a database")) == ExitCode.DATA_FORMAT
    assert exit_code_of(sqlite3.OperationalError("unable to open database file")) == ExitCode.NOT_FOUND


def test_a_batch_where_every_code_failed_exits_with_the_most_severe_kind() -> None:
    unknown, malformed, corrupt = (
        domain_errors.UnknownCodeError("u"),
        domain_errors.InvalidCodeError("m"),
        domain_errors.DataFormatError("c"),
    )
    assert failures_exit_code({"a": malformed}) == 2
    assert failures_exit_code({"a": unknown, "b": malformed}) == 3
    assert failures_exit_code({"a": unknown, "b": corrupt, "c": malformed}) == 4
    assert failures_exit_code({"a": "UnknownCodeError: not in stock.db"}) == 3  # as export reports keep them
    assert failures_exit_code({"a": "OSError: disk", "b": corrupt}) == 1
    assert exit_code_of(domain_errors.LoadErrors({"a": corrupt})) == 4
    assert exit_code_of(AllFailedError({"a": unknown, "b": "DataFormatError: bad"})) == 4
    assert outcome_exit_code({}, 3) == 0
    assert outcome_exit_code({"a": corrupt}, 3) == ExitCode.PARTIAL
    assert outcome_exit_code({"a": corrupt}, 0) == 4


def test_messages_are_one_line_and_name_the_file() -> None:
    assert (
        error_message(OSError("No space left on device (os error 28)"))
        == "No space left on device (os error 28)"
    )
    err = OSError("No space left on device (os error 28)")
    err.filename = "/dev/full"
    assert error_message(err) == "/dev/full: No space left on device (os error 28)"
    assert error_message(domain_errors.HQError("two\n   lines")) == "two lines"
    text = error_message(sqlite3.DatabaseError("file is not a database"), database="sqlite:////x/notes.txt")
    assert text == "registry sqlite:////x/notes.txt: file is not a database"
    assert "secret" not in error_message(domain_errors.HQError("cannot reach postgresql://u:secret@h/db"))
    assert "secret" not in error_message(OSError("connect to postgresql://u:secret@h:5432/db failed"))


def test_values_print_without_python_reprs() -> None:
    assert display(dt.datetime(1990, 12, 19)) == "1990-12-19"
    assert display(dt.datetime(2024, 1, 2, 9, 30)) == "2024-01-02 09:30:00"
    assert display(["SH", "SZ"]) == "SH, SZ" and display([]) == "(none)"
    assert display(487.0) == "487" and display(0.2) == "0.2" and display(None) == ""
    assert display(Path("/a/b")) == "/a/b"
    assert display(list(range(30))).endswith("… (30 in all)")
    lines = field_lines({"calendar": {"days": 5121, "first": dt.datetime(1990, 12, 19)}, "failed": {}})
    assert lines == ["calendar:", "  days: 5121", "  first: 1990-12-19", "failed: (none)"]


def test_types_by_name_and_tsv_dates() -> None:
    frame = pl.DataFrame(
        {"code": ["SH000001", "SH600000"], "type": [2, 1], "when": [dt.datetime(2011, 12, 6)] * 2}
    )
    named = with_type_names(frame)
    assert named["type"].to_list() == ["index", "a_share"]
    assert tsv_text(named).splitlines() == [
        "code\ttype\twhen",
        "SH000001\tindex\t2011-12-06",
        "SH600000\ta_share\t2011-12-06",
    ]
