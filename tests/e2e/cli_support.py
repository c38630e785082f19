"""Running ``hq`` as a user does: a new interpreter, output captured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_hq(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -m hikyuu_qlib ARGS`` with ``env`` as its whole environment (None: this process's)."""
    return subprocess.run([sys.executable, "-m", "hikyuu_qlib", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)
