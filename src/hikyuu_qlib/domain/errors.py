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
    │   ├── UnknownCodeError         a code the store does not know
    │   ├── NoBarsError              a code the store lists but holds no bars for ("without bars")
    │   ├── ModelNotFoundError       a model id (or id prefix) the registry does not hold
    │   ├── RegistryNotFoundError    no registry at that path or in that database
    │   ├── ArtifactNotFoundError    a model artifact file that is missing
    │   └── ImportanceNotFoundError  a model stored without feature importance
    ├── DataFormatError              a file that exists but cannot be read (corrupt, truncated)
    │   ├── ArtifactIntegrityError   an artifact whose sha256 or size does not match its record
    │   └── ArtifactLocationError    an artifact record whose URI points outside the artifact store
    ├── LoadErrors                   a batch load in which some codes failed (carries the report)
    └── RegistryUnavailableError     the registry database kept failing after bounded retries

    Model registry input errors (all InvalidInputError):
        UnknownModelTypeError, UnknownModelStatusError, IllegalTransitionError,
        InvalidHyperparametersError, InvalidMetricsError, InvalidCursorError, AmbiguousIdError,
        RegistryAccessError (the database refused the URL's credentials or role)

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


class NoBarsError(NotFoundError):
    """A code the store lists but holds no bars for (no data table, no features folder).

    Not a failure: batch loads count such codes as "without bars" (``LoadResult.without_bars``) instead
    of reporting them as errors. A code the store does not know at all is an :class:`UnknownCodeError`.
    """


class DataFormatError(HQError):
    """A file that exists but is corrupt, truncated or of the wrong layout."""


class LoadErrors(HQError):
    """Some codes of a batch load failed; ``errors`` maps each code to its error."""

    def __init__(self, errors: Mapping[str, BaseException]) -> None:
        self.errors = dict(errors)
        lines = "; ".join(f"{code}: {err}" for code, err in sorted(self.errors.items()))
        super().__init__(f"{len(self.errors)} code(s) failed to load: {lines}")


# --- model registry -------------------------------------------------------------------------------


class UnknownModelTypeError(InvalidInputError):
    """A model type that is not one of :class:`~hikyuu_qlib.domain.model.ModelType`."""


class UnknownModelStatusError(InvalidInputError):
    """A model status that is not one of :class:`~hikyuu_qlib.domain.model.ModelStatus`."""


class IllegalTransitionError(InvalidInputError):
    """A status change that the model lifecycle does not allow."""


class InvalidHyperparametersError(InvalidInputError):
    """Hyperparameters that are not a JSON object."""


class InvalidMetricsError(InvalidInputError):
    """Metrics that are not JSON or hold NaN/infinite numbers."""


class InvalidCursorError(InvalidInputError):
    """A page cursor that was tampered with, is malformed, or belongs to another query or registry."""


class AmbiguousIdError(InvalidInputError):
    """An id prefix that matches more than one model."""


class ModelNotFoundError(NotFoundError):
    """A model id (or id prefix) that the registry does not hold."""


class RegistryNotFoundError(NotFoundError):
    """No registry where the URL points: a SQLite file or a PostgreSQL database that does not exist, or a
    database without the registry's tables (commands that only read never create one)."""


class RegistryAccessError(InvalidInputError):
    """The registry database refused the connection: wrong password, unknown role, no permission.
    Not transient: it fails at once, not after the retries."""


class ArtifactNotFoundError(NotFoundError):
    """A model artifact that is missing from the artifact store."""


class ImportanceNotFoundError(NotFoundError):
    """A model stored without feature importance (its family reports none, or it was registered before
    importance was stored)."""


class ArtifactIntegrityError(DataFormatError):
    """An artifact whose content does not match the sha256 (or size) recorded for it."""


class ArtifactLocationError(DataFormatError):
    """An artifact record whose URI is not the content address of its sha256 under the store's root."""


class RegistryUnavailableError(HQError):
    """The registry database kept failing with transient faults until the retry deadline, or cannot be
    reached at all (an unknown host)."""
