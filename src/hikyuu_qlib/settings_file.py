"""The settings as a user sees them: each value with where it comes from, and edits of the config file.

:func:`describe_settings` gives every setting's effective value and its source: ``env`` (an ``HQ_*``
variable), ``file`` (the config file, :func:`~hikyuu_qlib.settings.config_path`) or ``default``.
:func:`set_setting` validates one key and value against :class:`~hikyuu_qlib.settings.Settings` (the
field's type and bounds, then the whole file's values together) and writes it into the config file: a
``key = value`` line of its own is replaced in place (comments and the other lines stay), else the key
is added; the file is replaced atomically. Passwords in URLs are masked in what is shown.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tomllib
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.observability.redact import mask_url
from hikyuu_qlib.settings import ENV_PREFIX, Settings, config_path

Source = Literal["env", "file", "default"]
#: Settings whose values may hold a password (shown masked).
_URLS = ("database_url", "cache_url", "pushgateway_url")


@dataclass(frozen=True, slots=True)
class SettingValue:
    """One setting: its key, effective value (JSON-ready, passwords masked), source and variable name."""

    key: str
    value: Any
    source: Source
    env: str
    description: str


def env_name(key: str) -> str:
    return f"{ENV_PREFIX}{key.upper()}"


def read_config_file(path: Path) -> dict[str, Any]:
    """The config file's keys and values (empty when there is no file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"config file {path} is not valid TOML: {exc}") from None


def describe_settings() -> tuple[Path, list[SettingValue]]:
    """The config file's path and every setting's effective value with its source.

    The values are the settings the process environment and the config file give (:class:`Settings`
    validates them, so a bad value fails here as it fails every command).
    """
    path = config_path()
    in_file = read_config_file(path)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise InvalidInputError(
            f"the settings are invalid ({_first_error(exc)}): see the HQ_* variables and {path}"
        ) from None
    present = {k.upper() for k in os.environ}
    rows: list[SettingValue] = []
    for key, info in Settings.model_fields.items():
        source: Source = "env" if env_name(key) in present else "file" if key in in_file else "default"
        value = _shown(key, getattr(settings, key))
        rows.append(SettingValue(key, value, source, env_name(key), info.description or ""))
    return path, rows


def set_setting(key: str, text: str) -> tuple[Path, Any]:
    """Validate ``key`` = ``text`` and write it into the config file; returns the file and the value set.

    ``text`` is read as JSON when it is JSON (numbers, ``true``, lists, objects), else as a string;
    ``null`` (and ``none`` or ``off`` for ``cache_url``) removes the key, so its default applies.
    Raises :class:`InvalidInputError` for an unknown key, a value the setting refuses, or a file whose
    values together are invalid (e.g. ``cache_lock_ttl_ms`` not below ``cache_lock_wait_s``).
    """
    if key not in Settings.model_fields:
        near = get_close_matches(key, list(Settings.model_fields), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else "; see hq config show"
        raise InvalidInputError(f"unknown setting {key!r}{hint}")
    value = _parse(key, text)
    path = config_path()
    current = read_config_file(path)
    merged = {k: v for k, v in current.items() if k != key}
    if value is not None:
        merged[key] = _plain(value)
    try:
        Settings.model_validate(merged)
    except ValidationError as exc:
        raise InvalidInputError(f"{key} = {text!r} is not valid with {path}: {_first_error(exc)}") from None
    _write(path, key, None if value is None else merged[key], merged)
    return path, _shown(key, value)


# --- internals -----------------------------------------------------------------------------------------


def _parse(key: str, text: str) -> Any:
    # the type only: the bounds and the checks across settings run on the whole file (set_setting)
    adapter: TypeAdapter[Any] = TypeAdapter(Settings.model_fields[key].annotation)
    if text.strip() == "null" or (key == "cache_url" and text.strip().lower() in ("", "none", "off")):
        return None  # the key is removed: its default applies
    candidates: list[Any] = [text]
    with contextlib.suppress(ValueError):  # not JSON: the text itself
        candidates.insert(0, json.loads(text))
    error: ValidationError | None = None
    for candidate in candidates:
        try:
            return adapter.validate_python(candidate)
        except ValidationError as exc:
            error = error or exc
    assert error is not None
    raise InvalidInputError(f"invalid value {text!r} for {key}: {_first_error(error)}") from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where + ': ' if where else ''}{first.get('msg', exc)}"


def _plain(value: Any) -> Any:
    """A validated value as TOML-ready Python (paths as strings, models as tables, tuples as lists)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _shown(key: str, value: Any) -> Any:
    plain = _plain(value)
    if key in _URLS and isinstance(plain, str):
        return mask_url(plain)
    return plain


def _toml(value: Any) -> str:
    """One TOML value (inline form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: same escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    raise InvalidInputError(f"cannot write {value!r} to TOML")


def _write(path: Path, key: str, value: Any, expected: dict[str, Any]) -> None:
    """Set (or, with ``value`` None, remove) ``key`` in the file, keeping its other lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    mine = [
        i
        for i in range(first_table)
        if lines[i].split("=", 1)[0].strip().strip("\"'") == key and "=" in lines[i]
    ]
    new = [] if value is None else [f"{key} = {_toml(value)}"]
    if mine:
        edited = (
            lines[: mine[0]]
            + new
            + [line for i, line in enumerate(lines[mine[0] + 1 :], mine[0] + 1) if i not in mine]
        )
    else:
        edited = lines[:first_table] + new + lines[first_table:]
    text = "\n".join(edited) + "\n"
    try:
        ok = tomllib.loads(text) == expected
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:  # a value spanning lines: write the whole file from its values (its comments are lost)
        text = "".join(f"{k} = {_toml(v)}\n" for k, v in expected.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
