"""Running ``hq`` as a user does: a new interpreter, output captured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def run_hq(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """``python -m hikyuu_qlib ARGS`` with ``env`` as its whole environment (None: this process's)."""
    return subprocess.run(
        [sys.executable, "-m", "hikyuu_qlib", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def hq_env(home: Path) -> dict[str, str]:
    """This process's environment (PYTHONPATH kept) without HQ_* settings, with HQ_HOME at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env["HQ_HOME"] = str(home)
    return env


def copy_qlib(qlib_dir: Path, dest: Path, codes: list[str]) -> Path:
    """A Qlib provider directory at ``dest`` holding ``codes`` of ``qlib_dir`` (``instruments/all.txt`` only)."""
    (dest / "calendars").mkdir(parents=True)
    (dest / "instruments").mkdir()
    shutil.copy(qlib_dir / "calendars" / "day.txt", dest / "calendars" / "day.txt")
    wanted = {c.upper() for c in codes}
    spans = [
        line
        for line in (qlib_dir / "instruments" / "all.txt").read_text().splitlines()
        if line.split("\t", 1)[0].upper() in wanted
    ]
    (dest / "instruments" / "all.txt").write_text("\n".join(spans) + "\n")
    for code in codes:
        shutil.copytree(qlib_dir / "features" / code.lower(), dest / "features" / code.lower())
    return dest


def truncate_bin(path: Path, drop: int = 2) -> None:
    """Damage a feature bin: its size is no longer a multiple of 4 bytes."""
    os.truncate(path, path.stat().st_size - drop)
