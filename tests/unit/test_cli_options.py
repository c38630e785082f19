"""The shared CLI options are defined once, in ``cli/options.py``, with one output-format enum."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer

from hikyuu_qlib.cli.options import SUMMARY_FORMATS, OutputFormat, format_choice

CLI = Path(__file__).resolve().parents[2] / "src" / "hikyuu_qlib" / "cli"
PACKAGE = CLI.parent


def _option_names(path: Path) -> list[str]:
    """The first flag of every ``typer.Option(...)`` call in ``path``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "Option"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(str(node.args[0].value))
    return names


def test_shared_options_are_defined_only_in_options_module() -> None:
    defined = {path.name: _option_names(path) for path in CLI.glob("*.py")}
    assert "--format" in defined["options.py"] and "--db" in defined["options.py"]
    for name, flags in defined.items():
        if name == "options.py":
            continue
        assert "--format" not in flags, name
        assert "--db" not in flags, name
        # hq demo's source defaults to the synthetic market whatever HQ_SOURCE says: its own option
        assert "--source" not in flags or name == "demo.py", name


def test_one_format_enum_in_the_package() -> None:
    enums = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Format"):
                enums.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert enums == ["cli/options.py:OutputFormat"]


def test_format_choice_accepts_only_what_it_allows() -> None:
    summary = format_choice(*SUMMARY_FORMATS)
    assert summary("json") is OutputFormat.json and summary("TABLE") is OutputFormat.table
    with pytest.raises(typer.BadParameter, match="'csv' is not one of table, json"):
        summary("csv")
    frame = format_choice(*OutputFormat)
    assert frame("parquet") is OutputFormat.parquet
