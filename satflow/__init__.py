"""satflow: satellite NetCDF archives to ML-ready Zarr datacubes and honest compression benchmarks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("satflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
