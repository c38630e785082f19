"""The README's Python blocks run as written, from the repository root, on ../shared/data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO, require

BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks() -> list[str]:
    return BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_python_blocks() -> None:
    assert len(_blocks()) >= 1


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_python_block_runs_as_written(index: int, tmp_path: Path) -> None:
    # the README names the data relatively, as a new user sees it next to the repository
    require((REPO.parent / "shared" / "data").is_dir(), f"no ../shared/data next to {REPO}")
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(_blocks()[index], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env["HQ_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"README block {index} failed:\n{proc.stderr[-3000:]}"
