"""The app uvicorn imports in the observability tests (see :mod:`obs_support`)."""

from obs_support import create_app

app = create_app()
