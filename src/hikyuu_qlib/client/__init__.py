"""Clients of the HTTP service (``hq serve``): :class:`Client` (blocking) and :class:`AsyncClient`."""

from hikyuu_qlib.client.base import JobFailedError, Predictions, ServiceAuthError, ServiceError
from hikyuu_qlib.client.clients import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "JobFailedError", "Predictions", "ServiceAuthError", "ServiceError"]
