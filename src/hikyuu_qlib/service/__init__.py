"""The HTTP service (``hq serve``): FastAPI over the ports and clients the composition root opens."""

from hikyuu_qlib.service.app import create_app

__all__ = ["create_app"]
