"""The exception tree of hikyuu-qlib.

Every error the library raises on purpose derives from :class:`HQError`::

    HQError
    ├── InvalidInputError            bad input from a caller (also a ValueError)
    │   ├── InvalidCodeError         a stock code that does not parse
    │   ├── InvalidDateRangeError    start after end, unparseable or empty range
    │   ├── InvalidSourceError       a source spec that is not hikyuu:/qlib:/synthetic
    │   └── UnsupportedKTypeError    a ktype the store does not hold
    ├── NotFoundError                something named does not exist (also a LookupError)
    │   ├── StoreNotFoundError       a missing data directory or file
    │   └── UnknownCodeError         a code the store does not know
    ├── DataFormatError              a file that exists but cannot be read (corrupt, truncated)
    └── LoadErrors                   a batch load in which some codes failed (carries the report)

Messages always quote the offending input (code, path, field) so that a user can act on them.
"""

from __future__ import annotations

from collections.abc import Mapping


class HQError(Exception):
    """Base of every error raised by hikyuu-qlib on purpose."""


class InvalidInputError(HQError, ValueError):
    """A caller passed a value that cannot be used."""


class InvalidCodeError(InvalidInputError):
    """A stock code that cannot be parsed."""


class InvalidDateRangeError(InvalidInputError):
    """A date range that is inverted, empty or unparseable."""


class InvalidSourceError(InvalidInputError):
    """A market data source spec that cannot be understood."""


class UnsupportedKTypeError(InvalidInputError):
    """A ktype that the store does not hold."""


class NotFoundError(HQError, LookupError):
    """Something named by the caller does not exist."""


class StoreNotFoundError(NotFoundError):
    """A data directory or file that does not exist."""


class UnknownCodeError(NotFoundError):
    """A well-formed code that the store does not know."""


class DataFormatError(HQError):
    """A file that exists but is corrupt, truncated or of the wrong layout."""


class LoadErrors(HQError):
    """Some codes of a batch load failed; ``errors`` maps each code to its error."""

    def __init__(self, errors: Mapping[str, BaseException]) -> None:
        self.errors = dict(errors)
        lines = "; ".join(f"{code}: {err}" for code, err in sorted(self.errors.items()))
        super().__init__(f"{len(self.errors)} code(s) failed to load: {lines}")
