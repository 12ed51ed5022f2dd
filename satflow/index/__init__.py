"""The patch index: Parquet selectors of every usable (time, patch) of a store.

Public entry points are imported lazily: `satflow.config` imports `satflow.index.options`, and
that must not pull in dask, pyarrow or torch.
"""

from __future__ import annotations

from satflow.lazy import lazy_getattr

_EXPORTS = {
    "build_index": "satflow.index.build",
    "IndexBuildResult": "satflow.index.build",
    "scan_index": "satflow.index.build",
    "plan_index": "satflow.index.plan",
    "read_index": "satflow.index.io",
    "write_index": "satflow.index.io",
    "read_metadata": "satflow.index.io",
    "StaleIndexError": "satflow.index.io",
    "IndexFileError": "satflow.index.io",
    "check_leaks": "satflow.index.splits",
    "check_index_leaks": "satflow.index.summary",
    "summarize_index": "satflow.index.summary",
    "stratify_by_feature": "satflow.index.strata",
    "stratify_by_labels": "satflow.index.strata",
    "sample_balanced": "satflow.index.sampling",
    "sample_random": "satflow.index.sampling",
    "add_triplets": "satflow.index.triplets",
    "time_windows": "satflow.index.windows",
    "export_patches": "satflow.index.export",
    "PatchGrid": "satflow.index.geometry",
    "lon_midpoint": "satflow.index.geometry",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
