"""Running ``hq`` as a user does: a new interpreter, output captured (:func:`run_hq`); or the same
entrypoint in this process (:func:`run_hq_here`), where the process boundary is not what a test is about."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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


def run_hq_here(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``hq ARGS`` in this process, through the function ``python -m hikyuu_qlib`` calls (with usage errors,
    exit codes and JSON errors as there), with ``env`` as its whole environment (None: this process's) and
    ``cwd`` as its working directory, both given back afterwards.

    Its stdout and stderr are captured at file descriptors 1 and 2, as a child's pipes would capture them:
    what a native library writes there is caught too, and neither stream is a terminal. The package logger
    is given back as it was (each command sets its own handler on it).
    """
    from hikyuu_qlib.cli.main import run_hq as run_in_process

    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    logger = logging.getLogger("hikyuu_qlib")
    saved_logger = (list(logger.handlers), logger.level, logger.propagate)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        with _captured() as (out, err):
            code = run_in_process(list(args))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for handler in logger.handlers:
            if handler not in saved_logger[0]:
                handler.close()
        logger.handlers[:] = saved_logger[0]
        logger.setLevel(saved_logger[1])
        logger.propagate = saved_logger[2]
    return subprocess.CompletedProcess(["hq", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """File descriptors 1 and 2 (and ``sys.stdout``/``sys.stderr`` over them) sent to temporary files; their
    text in the two buffers when the block ends."""
    out, err = io.StringIO(), io.StringIO()
    saved_streams = (sys.stdout, sys.stderr)
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        for stream in saved_streams:
            stream.flush()
        saved_fds = (os.dup(1), os.dup(2))
        os.dup2(out_file.fileno(), 1)
        os.dup2(err_file.fileno(), 2)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
        )
        try:
            yield out, err
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
            for buffer, file in ((out, out_file), (err, err_file)):
                file.seek(0)
                buffer.write(file.read().decode("utf-8", errors="replace"))


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
