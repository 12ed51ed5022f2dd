"""satflow: satellite NetCDF archives to ML-ready Zarr datacubes and honest compression benchmarks."""

from satflow.version import __version__

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
