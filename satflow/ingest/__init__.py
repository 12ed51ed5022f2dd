"""NetCDF archive -> satflow store, as facts -> a plan of plain data -> tasks -> one executor call.

Inputs are read through the source protocol (`satflow.sources.base`): the plan and the tasks are
the same for every source kind (gridded files, binned swath windows, ...). Auxiliary products
(`ingest.aux_products`) are scanned the same way, paired with the time slots by
`satflow.sources.auxiliary.plan_aux_product`, attached to the regions, and read by the same tasks
after the primary features.

`scan_ingest` is the one I/O step before planning: it scans file metadata (no data), groups the
inputs through their source and reads the existing store's facts, returning `IngestFacts` (plain
data). `plan_ingest` turns facts into a plan without touching a file: it picks the reference grid
and features, rejects inputs that cannot join the cube, and lays out time slots and chunk-aligned
regions; `scan_and_plan` does both. The plan is printable (`--dry-run`) and testable without files
or a cluster. `execute_plan` creates the store template (or resizes it for `--append`) and submits
one task per region; each task reads its files, writes X/M and the per-step partial statistics,
then flags its steps as ingested, so a re-run skips finished regions and a killed worker's task is
simply retried.

Public entry points are imported lazily: `satflow.config` imports `satflow.ingest.options`, and
that must not pull in numpy, xarray, dask or netCDF4.
"""

from __future__ import annotations

from satflow.lazy import exports_of, lazy_getattr

_MODULES = {
    "satflow.ingest.api": ("IngestReport", "execute_plan", "prepare_store", "run_ingest", "scan_and_plan",
                           "write_regions"),
    "satflow.ingest.cube": ("describe_cube", "open_archive", "plan_dataset"),
    "satflow.ingest.facts": ("IngestFacts", "ProductFacts", "Skipped", "StoreFacts"),
    "satflow.ingest.inputs": ("IngestError", "expand_inputs"),
    "satflow.ingest.job": ("IngestJob", "ingest_job"),
    "satflow.ingest.plan": ("IngestPlan", "Region", "Slot", "grid_coordinates", "plan_ingest"),
    "satflow.ingest.scan": ("scan_ingest", "scan_store"),
    "satflow.ingest.tasks": ("fill_block", "fill_steps", "ingest_region"),
}
_EXPORTS = exports_of(_MODULES)

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
