"""Jobs of the HTTP service: their bodies (specs), the runner that claims them and the worker process
that runs one (work)."""
