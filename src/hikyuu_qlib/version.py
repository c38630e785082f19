"""The installed package's version, as its metadata says (``hq --version``, ``hq_build_info``)."""

from __future__ import annotations

PACKAGE = "hikyuu-qlib"


def package_version() -> str:
    """The installed package's version (its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown (not installed)"
