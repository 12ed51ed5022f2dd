"""The satflow datacube: one Zarr v3 group that `xr.open_zarr` opens.

Layout (the contract in DESIGN.md):
- `X` float32 (time, feature, lat, lon), NaN where there is no valid observation
- `M` uint8, same shape and chunks, 1 = valid; `M == isfinite(X)` always
- coords `time` (CF-encoded integer minutes; dates outside datetime64[ns] such as year-0
  climatologies, noleap or 360_day keep their calendar, so `xr.open_zarr` decodes them to cftime),
  `feature` (strings), `lat`, `lon` (degrees, CF attributes)
- `count`, `mean`, `std`, `min`, `max` (feature): statistics over valid points
- `step_count`, `step_mean`, `step_m2`, `step_min`, `step_max` (time, feature): the mergeable
  per-time-step partials those statistics are folded from; they make an interrupted ingest
  resumable (a finished region keeps its partials) and give inspect its missing-data table
- `units` (feature): physical units of each feature as read (after any conversion)
- `source_file` (time): provenance, the file that filled each time step ("" = not yet written)
- `ingested` (time) uint8: 1 once a time step's region is fully written (the resume marker)
- with auxiliary products: `aux_source_file` and `aux_time` (time, aux_product), the auxiliary scene
  mapped onto each step ("" / NaT where none was)
- on a local domain: `y`, `x` (metres), 2-D `latitude`/`longitude` and the CF grid mapping `crs`
- attributes: `satflow_version`, `satflow_config` (JSON), `satflow_fingerprint` after finalise

Modules: `layout` (the names, StoreLayout, CF attributes, the compressor), `template` (the empty
store and its growth along time), `write` (region writes, finalise, the lazy cube's attributes) and
`read` (group, dataset, partials, fingerprint). Everything that writes goes through zarr alone:
region writes run once per chunk on workers, and the template's metadata is the CF encoding
xarray's `to_zarr` gave it (tests/test_store_template.py keeps the recorded copy), without
importing xarray, pandas and dask.array into the ingest command.
"""

from satflow.store.layout import (
    DEFAULT_COMPRESSION_LEVEL,
    DIMS,
    STAT_NAMES,
    STEP_NAMES,
    TIME_CALENDAR,
    TIME_UNITS,
    StoreError,
    StoreLayout,
    compressor,
)
from satflow.store.read import compute_fingerprint, fingerprint, open_group, open_store, step_moments
from satflow.store.template import create_template, extend_time
from satflow.store.write import (
    add_grid_coordinates,
    annotate,
    consolidate,
    remove_partial_writes,
    StepRecord,
    finalize,
    write_region,
    write_steps,
    write_store_from_arrays,
)

__all__ = [
    "DEFAULT_COMPRESSION_LEVEL", "DIMS", "STAT_NAMES", "STEP_NAMES", "TIME_CALENDAR", "TIME_UNITS", "StoreError",
    "StepRecord", "StoreLayout", "add_grid_coordinates", "annotate", "compressor", "compute_fingerprint",
    "consolidate", "create_template", "extend_time", "finalize", "fingerprint", "open_group", "open_store", "remove_partial_writes", "step_moments",
    "write_region", "write_steps", "write_store_from_arrays",
]
