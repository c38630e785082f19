"""Choosing an executor by name (``inline``, ``local``, ``ray`` or ``ray://HOST:PORT``)."""

from __future__ import annotations

import os

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.executors.base import EXECUTOR_HELP, Executor, check_registry_for


def open_executor(
    spec: str,
    *,
    registry_url: str,
    threads: int = 1,
    workers: int | None = None,
    ray_temp_dir: str | None = None,
    max_retries: int = 3,
) -> Executor:
    """The executor named ``spec`` (see :data:`EXECUTOR_HELP`); ``threads`` is each task's LightGBM
    thread count, so ``workers`` defaults to the cores divided by it."""
    cores = os.cpu_count() or 1
    count = workers or max(1, cores // max(1, threads))
    if spec == "inline":
        from hikyuu_qlib.executors.inline import InlineExecutor

        return InlineExecutor()
    if spec == "local":
        from hikyuu_qlib.executors.local import LocalPoolExecutor

        return LocalPoolExecutor(count, max_retries=max_retries)
    if spec == "ray" or spec.startswith("ray://"):
        address = None if spec == "ray" else spec
        # a plain ``ray`` joins the cluster named by RAY_ADDRESS when it is set (Ray's own rule)
        check_registry_for(address or os.environ.get("RAY_ADDRESS") or None, registry_url)
        from hikyuu_qlib.executors.ray import RayExecutor

        return RayExecutor(
            address,
            workers=workers,
            threads=threads,
            max_retries=max_retries,
            temp_dir=ray_temp_dir,
        )
    raise InvalidInputError(f"unknown executor {spec!r}: expected {EXECUTOR_HELP}")
