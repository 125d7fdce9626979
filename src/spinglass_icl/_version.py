"""The package version's single source (``pyproject.toml`` reads it at build time)."""

__version__ = "0.1.0"
