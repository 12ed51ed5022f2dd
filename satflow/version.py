"""The installed satflow version, in a module of its own: stores, indexes and reports record it, and
importing it from here (not from the package) keeps `satflow/__init__` out of every import cycle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("satflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
