"""Running the app under uvicorn: one process, or a supervisor with ``workers`` processes.

One job runner serves a server however many workers it has: with one worker it runs in the worker's
lifespan; with several it runs in the supervisor (``hq serve``'s own process) and the workers, built by
:func:`~hikyuu_qlib.service.app.app_from_env` from the environment, run none. Workers die with the
supervisor (``PR_SET_PDEATHSIG``), and so do job processes with the runner: a ``hq serve`` killed with
SIGKILL leaves nothing running, and its next start marks the jobs it left ``running`` failed.
SIGTERM (or Ctrl-C) stops accepting connections, lets in-flight requests finish within
``api_shutdown_grace`` seconds, and stops the job runner (see :class:`~.jobs.runner.JobRunner.stop`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hikyuu_qlib.settings import Settings

log = logging.getLogger(__name__)


def _environment(settings: Settings) -> dict[str, str]:
    """The settings a worker process reads back from its environment (those a command line may set)."""
    env = {"HQ_SOURCE": settings.source, "HQ_HOME": str(settings.home)}
    if settings.database_url:
        env["HQ_DATABASE_URL"] = settings.database_url
    if settings.api_public_read:
        env["HQ_API_PUBLIC_READ"] = "true"
    return env


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = False,
) -> None:
    """Serve until SIGTERM or Ctrl-C. Each request is a trace of its own (or continues its caller's),
    never a child of the ``hq serve`` command's span."""
    from hikyuu_qlib.observability.tracing import detached_context

    with detached_context():
        _serve(settings, host=host, port=port, workers=workers, access_log=access_log)


def _serve(settings: Settings, *, host: str, port: int, workers: int, access_log: bool) -> None:
    import uvicorn

    from hikyuu_qlib.service.app import SUPERVISED_ENV, create_app

    common = {
        "host": host,
        "port": port,
        "timeout_graceful_shutdown": max(1, int(settings.api_shutdown_grace)),
        "log_config": None,
        "access_log": access_log,
        "server_header": False,
        "date_header": False,
    }
    if not settings.api_tokens:
        log.warning("no API tokens (HQ_API_TOKENS): every request that needs one will be refused (401)")
    if workers <= 1:
        log.info("serving on http://%s:%d", host, port)
        uvicorn.run(create_app(settings, run_jobs=True), **common)  # type: ignore[arg-type]
        return
    from hikyuu_qlib.service.jobs.runner import JobRunner

    os.environ.update(_environment(settings))
    os.environ[SUPERVISED_ENV] = "1"
    # several workers share one /metrics: prometheus-client's multiprocess mode, in a directory of this
    # server's own that is emptied before the workers start (values of a previous run would count again)
    from hikyuu_qlib.observability.exposition import prepare_multiprocess_dir, supervisor_metrics

    multiproc = Path(
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.home / f"metrics-{port}"))
    )
    prepare_multiprocess_dir(multiproc)
    # the runner counts the jobs in this process; its values go to the workers' directory too
    runner = JobRunner(settings, metrics=supervisor_metrics()).start()
    try:
        log.info("serving on http://%s:%d with %d workers", host, port, workers)
        uvicorn.run("hikyuu_qlib.service.app:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
    finally:
        runner.stop(settings.api_shutdown_grace)
