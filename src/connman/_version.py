__version__ = "0.1.0"
"""The version of connman; pyproject.toml reads it from here (the one place it is written)."""
