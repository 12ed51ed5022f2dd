"""The index plan: plain data over a store's facts, made without reading the store or a cluster.

`plan_index(facts, config)` does no I/O. From `IndexFacts` (what `satflow.index.build.scan_index`
read: shape, mask chunks, coordinates, times, the local domain if any) it lays out the patch grid,
the selected time range, every kept patch location with its geometry, window and space split, the
spatial chunks worth reading (those that touch a kept patch) and one `TimeBlock` per time chunk
of the range: the unit one task counts and turns into index rows (`satflow.index.tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from satflow.index.geometry import PatchGrid, in_lon_range, is_global_lon, patch_bounds, patch_ids
from satflow.index.options import IndexConfig
from satflow.index.projection import DomainAxes, domain_patch_bounds
from satflow.index.splits import WindowLayout, space_splits, time_splits
from satflow.index.validity import chunk_ranges, touching_chunks
from satflow.sources.timecodec import iso_times, parse_time_like

DEGREE_COLUMNS = ("lat0", "lat1", "lon0", "lon1", "lat_c", "lon_c")


@dataclass(frozen=True, eq=False)
class IndexFacts:
    """What the index builder knows of a store before planning (`scan_index` reads it)."""

    store: str  # resolved path
    fingerprint: str
    shape: tuple[int, int, int, int]  # M's (time, feature, lat, lon)
    chunks: tuple[int, int, int, int]  # M's chunk shape
    features: tuple[str, ...]
    times: np.ndarray  # decoded: datetime64, or cftime dates
    lat: np.ndarray
    lon: np.ndarray
    domain: DomainAxes | None = None  # a store on a local domain: metres and projection


@dataclass(frozen=True)
class PatchTable:
    """Per-location columns of the selected patches (flattened patch-grid order)."""

    flat: np.ndarray  # position in the flattened patch grid
    columns: dict[str, np.ndarray]
    split: np.ndarray  # int8 codes (space mode; ignored in time mode)
    geometry: tuple[str, ...] = DEGREE_COLUMNS  # the bounds columns every row copies (metres on a domain)

    def __len__(self) -> int:
        return self.flat.size


@dataclass(frozen=True)
class RowContext:
    """Everything a worker needs to turn one time block's counts into index rows."""

    patches: PatchTable
    times: np.ndarray  # the `time` column of every store time step (datetime64[ns] or ISO text)
    features: tuple[str, ...]
    height: int
    width: int
    max_nodata_fraction: float
    min_feature_valid_fraction: float
    per_feature: bool
    time_split: np.ndarray | None  # per store time step, in time mode


@dataclass(frozen=True)
class TimeBlock:
    """Store time steps [t0, t1): one time chunk of the mask (cut to the indexed range)."""

    t0: int
    t1: int


@dataclass(frozen=True, eq=False)
class CountJob:
    """What every counting task shares: where the mask is, which of its chunks to read, how to make rows."""

    store: str
    grid: PatchGrid
    feature_ranges: list[tuple[int, int]]  # [f0, f1) of each feature chunk
    spatial_chunks: list[tuple[int, int, int, int]]  # (y0, y1, x0, x1) of each chunk touching a kept patch
    n_features: int
    rows: RowContext


@dataclass(frozen=True, eq=False)
class IndexPlan:
    store: str
    fingerprint: str
    grid: PatchGrid
    time_range: tuple[int, int]  # [start, stop) store steps
    windows: WindowLayout
    blocks: list[TimeBlock]  # in time order: rows are written in this order
    job: CountJob = field(repr=False)

    @property
    def locations(self) -> int:
        return len(self.job.rows.patches)


def select_times(times: np.ndarray, config: IndexConfig) -> tuple[int, int]:
    """[start, stop) store time indices inside the configured time range (inclusive bounds)."""
    start, stop = 0, len(times)
    if config.time_start:
        start = int(np.searchsorted(times, parse_time_like(config.time_start, times), side="left"))
    if config.time_end:
        stop = int(np.searchsorted(times, parse_time_like(config.time_end, times), side="right"))
    if start >= stop:
        raise ValueError(f"index.time_start/time_end ({config.time_start} .. {config.time_end}) select no time "
                         f"step of the store ({times[0]} .. {times[-1]})")
    return start, stop


def index_times(times: np.ndarray) -> np.ndarray:
    """The `time` column's values: datetime64[ns], or ISO labels for cftime dates."""
    times = np.asarray(times)
    return times.astype("datetime64[ns]") if times.dtype.kind == "M" else np.array(iso_times(times), dtype=object)


def grid_steps(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """Median |spacing| of latitude and longitude (1 for a single cell)."""
    step = [float(np.median(np.abs(np.diff(c)))) if len(c) > 1 else 1.0 for c in (lat, lon)]
    return step[0], step[1]


def patch_table(grid: PatchGrid, lat: np.ndarray, lon: np.ndarray, config: IndexConfig,
                domain: DomainAxes | None = None) -> PatchTable:
    """Geometry, window and space split of every patch location kept by the lat/lon box.

    On a local domain (`domain`) the bounds come from its metres and projection, not from the 1-D lat/lon.
    """
    y0, x0 = (a.ravel() for a in np.meshgrid(grid.origins_y, grid.origins_x, indexing="ij"))
    if domain is None:
        bounds, metres = patch_bounds(lat, lon, grid, y0, x0), {}
    else:
        bounds, metres = domain_patch_bounds(domain, grid, y0, x0)
    keep = np.ones(y0.size, dtype=bool)
    if config.bbox is not None:
        box = config.bbox
        keep = (bounds.lat_c >= box.lat_min) & (bounds.lat_c <= box.lat_max)
        keep &= in_lon_range(bounds.lon_c, box.lon_min, box.lon_max)
    flat = np.flatnonzero(keep)
    layout = WindowLayout.for_grid(grid, config.split, *grid_steps(lat, lon))
    window_id, split = space_splits(grid, layout, config.split, y0[flat], x0[flat])
    columns = {
        "patch_id": patch_ids(y0[flat], x0[flat], grid.height, grid.width),
        "y0": y0[flat], "x0": x0[flat],
        **{name: getattr(bounds, name)[flat] for name in DEGREE_COLUMNS},
        **{name: values[flat] for name, values in metres.items()},
        "window_id": window_id,
    }
    return PatchTable(flat, columns, split, DEGREE_COLUMNS + tuple(metres))


def plan_index(facts: IndexFacts, config: IndexConfig) -> IndexPlan:
    """The patch grid, time range, kept patches, chunks to read and time blocks of an index; no I/O."""
    n_time, n_features, n_lat, n_lon = facts.shape
    grid = PatchGrid.square(n_lat, n_lon, config.patch_size, config.stride, wrap=is_global_lon(facts.lon))
    t_start, t_stop = select_times(facts.times, config)
    patches = patch_table(grid, facts.lat, facts.lon, config, facts.domain)
    if not len(patches):
        raise ValueError(f"index.bbox {config.bbox} contains no patch centre of the store {facts.store}")
    selected = np.zeros(grid.shape[0] * grid.shape[1], dtype=bool)
    selected[patches.flat] = True
    rows = RowContext(
        patches, index_times(facts.times), facts.features, grid.height, grid.width, config.max_nodata_fraction,
        config.min_feature_valid_fraction, config.per_feature_columns,
        time_splits(n_time, config.split) if config.split.mode == "time" else None,
    )
    _, f_chunk, y_chunk, x_chunk = facts.chunks
    spatial = touching_chunks(grid, selected.reshape(grid.shape), chunk_ranges(n_lat, y_chunk),
                              chunk_ranges(n_lon, x_chunk))
    job = CountJob(facts.store, grid, chunk_ranges(n_features, f_chunk), spatial, n_features, rows)
    blocks = [TimeBlock(t0, t1) for t0, t1 in chunk_ranges(n_time, facts.chunks[0], t_start, t_stop)]
    windows = WindowLayout.for_grid(grid, config.split, *grid_steps(facts.lat, facts.lon))
    return IndexPlan(facts.store, facts.fingerprint, grid, (t_start, t_stop), windows, blocks, job)

