"""Executors: where the training tasks of a rolling run or a sweep run.

One small port (:class:`~hikyuu_qlib.executors.base.Executor`) and three adapters: ``inline`` (in the
driver, one task after another), ``local`` (a process pool over the machine's cores) and ``ray`` (Ray
core tasks on a local Ray or an existing cluster). :func:`open_executor` picks one by name.
"""

from hikyuu_qlib.executors.base import Executor, TaskFailedError
from hikyuu_qlib.executors.factory import open_executor

__all__ = ["Executor", "TaskFailedError", "open_executor"]
