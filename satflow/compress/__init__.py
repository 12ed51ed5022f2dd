"""`satflow compress`: a datacube compressed for keeping, a satflow store any Zarr reader opens.

Stage shape as everywhere: `scan` (the input store's facts, the output's state) -> `plan` (pure: chunks and
regions) -> `tasks` (one per region, through the executor) -> `api` (wiring, summary); `output` writes the
template and the record. See DESIGN.md "Compressed stores" for the contract shared with the eval.

Entry points are imported lazily (`from satflow.compress import run_compress` works): `satflow.config`
imports `satflow.compress.options`, and that must not pull in numpy or zarr.
"""

from __future__ import annotations

from satflow.lazy import exports_of, lazy_getattr

_MODULES = {
    "satflow.compress.api": ("CompressResult", "compress_job", "prepare_compress", "run_compress", "summarize"),
    "satflow.compress.plan": ("CompressError", "CompressPlan", "plan_compress"),
}
_EXPORTS = exports_of(_MODULES)

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
