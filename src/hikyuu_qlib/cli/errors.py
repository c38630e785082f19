"""Exit codes, and the one mapping from an exception reaching ``hq`` to its exit code and its message.

======  =====================================================================================
code    meaning
======  =====================================================================================
0       success
1       any other failure (an unreachable database, a full disk, a bug)
2       invalid input (a bad option, a malformed code, an output path that cannot be used)
3       not found (an unknown code, model, file or directory)
4       corrupt data (a file that exists but cannot be read)
5       partial failure: some codes or files failed, the output holds the rest
130     interrupted
======  =====================================================================================

When every requested code fails, the exit code is that of their failure; when they failed in different
ways, the most severe one wins: any other failure (1) over corrupt data (4) over not found (3) over
invalid input (2).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping

from hikyuu_qlib.domain import errors as domain_errors
from hikyuu_qlib.observability.redact import mask_secrets, mask_url


class ExitCode:
    OK = 0
    FAILURE = 1
    INVALID_INPUT = 2
    NOT_FOUND = 3
    DATA_FORMAT = 4
    PARTIAL = 5
    INTERRUPTED = 130


#: The most severe first: which code a batch whose codes failed in different ways exits with.
SEVERITY = (ExitCode.FAILURE, ExitCode.DATA_FORMAT, ExitCode.NOT_FOUND, ExitCode.INVALID_INPUT)

#: Top-level packages of the database drivers behind the registry (and Hikyuu's stock.db).
DRIVERS = frozenset({"sqlalchemy", "sqlite3", "psycopg", "psycopg2", "psycopg_pool", "asyncpg", "aiosqlite"})


class AllFailedError(domain_errors.LoadErrors):
    """Every code (or file) of a batch failed; each failure was already logged, so the message only names them."""

    def __init__(self, errors: Mapping[str, BaseException | str], what: str = "codes") -> None:
        self.failures = dict(errors)
        super().__init__({k: v for k, v in errors.items() if isinstance(v, BaseException)})
        names = sorted(errors)
        shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
        self.args = (f"{len(names):,} of {len(names):,} {what} failed: {shown}",)

    def __str__(self) -> str:
        return str(self.args[0])


def exit_code_of(exc: BaseException) -> int:
    """The exit code of one error (see the module docstring)."""
    if isinstance(exc, AllFailedError):
        return failures_exit_code(exc.failures)
    if isinstance(exc, domain_errors.LoadErrors):
        return failures_exit_code(exc.errors)
    if is_driver_error(exc):
        return _driver_exit_code(exc)
    return _type_exit_code(type(exc))


def failures_exit_code(errors: Mapping[str, BaseException | str]) -> int:
    """The exit code of a batch in which every code failed: their kind, or the most severe of their kinds.

    A failure recorded as text (``"UnknownCodeError: …"``, as export reports keep them) is classified by the
    exception name it starts with.
    """
    codes = {
        exit_code_of(err) if isinstance(err, BaseException) else _text_exit_code(err)
        for err in errors.values()
    }
    for code in SEVERITY:
        if code in codes:
            return code
    return ExitCode.FAILURE


def outcome_exit_code(errors: Mapping[str, BaseException | str], succeeded: int) -> int:
    """0 without errors; 5 when some codes succeeded; else the code of the failures."""
    if not errors:
        return ExitCode.OK
    return ExitCode.PARTIAL if succeeded > 0 else failures_exit_code(errors)


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure the user can act on (not a bug, which keeps its traceback at DEBUG)."""
    return isinstance(exc, domain_errors.HQError | OSError | UnicodeError) or is_driver_error(exc)


def is_driver_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".", 1)[0] in DRIVERS


def error_message(exc: BaseException, database: str | None = None) -> str:
    """One line naming what failed: the error's own text, with paths for OS errors and drivers' noise cut.

    ``database`` names the registry in a database driver's error (its password masked).
    """
    if isinstance(exc, OSError) and not is_driver_error(exc):
        detail = exc.strerror or (str(exc.args[0]) if exc.args else type(exc).__name__)
        where = exc.filename
        text = f"{where}: {detail}" if where is not None else detail
    elif isinstance(exc, UnicodeDecodeError):
        text = f"not valid {exc.encoding} text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})"
    elif is_driver_error(exc):
        where = f"registry {mask_url(database)}" if database else "registry database"
        text = f"{where}: {_driver_text(exc)}"
    elif isinstance(exc, domain_errors.HQError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = re.sub(r"\(Background on this error at: [^)]*\)", "", text)  # SQLAlchemy's link, also when wrapped
    return mask_secrets(one_line(text))


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --- internals -----------------------------------------------------------------------------------------


def _type_exit_code(kind: type[BaseException]) -> int:
    if issubclass(kind, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if issubclass(kind, domain_errors.InvalidInputError):
        return ExitCode.INVALID_INPUT
    if issubclass(kind, domain_errors.NotFoundError | FileNotFoundError):
        return ExitCode.NOT_FOUND
    if issubclass(kind, domain_errors.DataFormatError):
        return ExitCode.DATA_FORMAT
    if issubclass(kind, IsADirectoryError | NotADirectoryError | FileExistsError | PermissionError):
        return ExitCode.INVALID_INPUT  # a path that was given but cannot be used as asked
    if issubclass(kind, UnicodeError):
        return ExitCode.INVALID_INPUT  # an input file that is not text in the expected encoding
    return ExitCode.FAILURE


def _text_exit_code(text: str) -> int:
    name = text.split(":", 1)[0].strip()
    kind = getattr(domain_errors, name, None) or getattr(builtins, name, None)
    if (
        isinstance(kind, type)
        and issubclass(kind, BaseException)
        and not issubclass(kind, domain_errors.LoadErrors)
    ):
        return _type_exit_code(kind)
    return ExitCode.FAILURE


def _origin(exc: BaseException) -> BaseException:
    """The driver's own exception behind SQLAlchemy's wrapper."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def _driver_text(exc: BaseException) -> str:
    return str(_origin(exc))


def _driver_exit_code(exc: BaseException) -> int:
    text = str(_origin(exc)).lower()
    if "file is not a database" in text or "malformed" in text:
        return ExitCode.DATA_FORMAT
    if "unable to open database file" in text:
        return ExitCode.NOT_FOUND
    return ExitCode.FAILURE
