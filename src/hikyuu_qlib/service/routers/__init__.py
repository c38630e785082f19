"""The API's routes, one module per resource; each ``router(settings)`` builds its routes with the
settings' limits written into their parameter schemas."""
