"""The version of facedist (one place; the package and the runs' records read it)."""
__version__ = "0.1.0"
