"""The ``hq`` command line: a thin shell over the library."""
