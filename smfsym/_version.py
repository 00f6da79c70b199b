"""The version of smfsym (one place; pyproject.toml repeats it)."""
__version__ = "0.1.0"
