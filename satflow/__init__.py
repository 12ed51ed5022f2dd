"""satflow: satellite NetCDF archives to ML-ready Zarr datacubes and honest compression benchmarks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("satflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "open_archive", "zarr_codec"]


def __getattr__(name: str):
    # Lazy: `import satflow` (and so `satflow --help`) must not pay for xarray, dask and netCDF4.
    if name == "open_archive":
        from satflow.ingest import open_archive

        return open_archive
    if name == "zarr_codec":
        from satflow.codecs.zarr import zarr_codec

        return zarr_codec
    raise AttributeError(f"module 'satflow' has no attribute {name!r}")
