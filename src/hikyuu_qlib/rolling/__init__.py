"""Rolling retraining and sweeps: the windows, the typed training tasks and the worker that runs one.

The drivers live in :mod:`hikyuu_qlib.workflow.rolling` and :mod:`hikyuu_qlib.workflow.sweep`; the
executors that run the tasks (a local process pool, Ray) in :mod:`hikyuu_qlib.executors`.
"""
