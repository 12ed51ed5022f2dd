"""Build the patch index of a store: one Parquet row per usable (time, patch).

The builder reads only the mask `M`, one Dask task per chunk (`satflow.index.validity`), turns
each time block's counts into rows (filters, splits) on the workers, and streams row groups into
the Parquet file in batches of `index.time_batch` time chunks, so memory stays bounded however
long the archive is.
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pyarrow as pa

from satflow.index.geometry import PatchGrid, in_lon_range, is_global_lon, patch_bounds, patch_ids
from satflow.index.io import FORMAT, FORMAT_VERSION, IndexWriter
from satflow.index.options import IndexConfig
from satflow.index.projection import METRE_COLUMNS, DomainAxes, domain_patch_bounds
from satflow.index.splits import SPLITS, WindowLayout, space_splits, time_splits
from satflow.index.validity import time_block_counts
from satflow.runtime.executors import as_executor
from satflow.sources.timecodec import iso_times, parse_time_like
from satflow.version import __version__

BASE_COLUMNS = (
    ("patch_id", pa.string()), ("t", pa.int32()), ("time", pa.timestamp("ns")),
    ("y0", pa.int32()), ("x0", pa.int32()), ("height", pa.int32()), ("width", pa.int32()),
    ("lat0", pa.float64()), ("lat1", pa.float64()), ("lon0", pa.float64()), ("lon1", pa.float64()),
    ("lat_c", pa.float64()), ("lon_c", pa.float64()),
    ("valid_frac", pa.float64()), ("min_feature_valid_frac", pa.float64()),
)
TAIL_COLUMNS = (("window_id", pa.int64()), ("split", pa.string()))
DEGREE_COLUMNS = ("lat0", "lat1", "lon0", "lon1", "lat_c", "lon_c")


def index_schema(features: list[str], per_feature: bool, time_type: pa.DataType = pa.timestamp("ns"),
                 projected: bool = False) -> pa.Schema:
    """Arrow schema of a freshly built index (derived steps add columns).

    `time` is a timestamp, or ISO text for stores in a calendar or year numpy cannot hold (cftime).
    `projected` (a store on a local domain) adds the patch bounds in metres after `lon_c`.
    """
    extra = [(f"valid_frac_{name}", pa.float64()) for name in features] if per_feature else []
    base = [(name, time_type if name == "time" else kind) for name, kind in BASE_COLUMNS]
    if projected:
        at = [name for name, _ in base].index("lon_c") + 1
        base[at:at] = [(name, pa.float64()) for name in METRE_COLUMNS]
    return pa.schema([*base, *extra, *TAIL_COLUMNS])


def index_times(times: np.ndarray) -> np.ndarray:
    """The `time` column's values: datetime64[ns], or ISO labels for cftime dates."""
    times = np.asarray(times)
    return times.astype("datetime64[ns]") if times.dtype.kind == "M" else np.array(iso_times(times), dtype=object)


@dataclass
class IndexBuildResult:
    """What `build_index` wrote."""

    path: Path
    rows: int
    locations: int
    time_steps: int
    candidates: int
    split_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        splits = ", ".join(f"{name} {count}" for name, count in self.split_rows.items())
        lines = [f"indexed {self.rows} of {self.candidates} candidate patches ({self.locations} locations x "
                 f"{self.time_steps} time steps) in {self.seconds:.1f} s -> {self.path}", f"  rows per split: {splits}"]
        return "\n".join([*lines, *(f"  warning: {text}" for text in self.warnings)])


def split_warnings(split_rows: dict[str, int], config: IndexConfig) -> list[str]:
    """Splits that were asked for (fraction > 0) but got no row: windows too large for the grid."""
    hint = ("lower index.split.window_patches / window_degrees (--window-patches)" if config.split.mode == "space"
            else "lower index.split.time_block (--time-block)")
    return [f"split '{name}' has no rows although its fraction is {getattr(config.split, name)}: {hint}"
            for name in SPLITS[:3] if getattr(config.split, name) > 0 and split_rows.get(name, 0) == 0]


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


def grid_steps(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """Median |spacing| of latitude and longitude (1 for a single cell)."""
    step = [float(np.median(np.abs(np.diff(c)))) if len(c) > 1 else 1.0 for c in (lat, lon)]
    return step[0], step[1]


def rows_for_time_block(counts: np.ndarray, t_offset: int, ctx: RowContext) -> pd.DataFrame:
    """Index rows (filtered) from valid counts (time, feature, patch row, patch col)."""
    n_time, n_feature = counts.shape[:2]
    cells = ctx.height * ctx.width
    per_patch = counts.reshape(n_time, n_feature, -1)[:, :, ctx.patches.flat].astype(np.int64)
    total = per_patch.sum(axis=1)
    invalid = n_feature * cells - total
    feature_frac = per_patch / cells
    min_feature = feature_frac.min(axis=1)
    keep = invalid <= ctx.max_nodata_fraction * n_feature * cells + 1e-9
    keep &= min_feature >= ctx.min_feature_valid_fraction - 1e-12
    ti, pi = np.nonzero(keep)
    t = ti + t_offset
    columns = ctx.patches.columns
    split_codes = ctx.time_split[t] if ctx.time_split is not None else ctx.patches.split[pi]
    frame = {
        "patch_id": columns["patch_id"][pi], "t": t.astype(np.int32), "time": ctx.times[t],
        "y0": columns["y0"][pi].astype(np.int32), "x0": columns["x0"][pi].astype(np.int32),
        "height": np.full(t.size, ctx.height, np.int32), "width": np.full(t.size, ctx.width, np.int32),
        **{name: columns[name][pi] for name in ctx.patches.geometry},
        "valid_frac": total[ti, pi] / (n_feature * cells),
        "min_feature_valid_frac": min_feature[ti, pi],
    }
    if ctx.per_feature:
        for k, name in enumerate(ctx.features):
            frame[f"valid_frac_{name}"] = feature_frac[ti, k, pi]
    frame["window_id"] = columns["window_id"][pi]
    frame["split"] = np.asarray(SPLITS, dtype=object)[split_codes]
    return pd.DataFrame(frame)


def build_metadata(store_path: Path, store_fingerprint: str, ds, grid: PatchGrid, config: IndexConfig,
                   time_range: tuple[int, int], domain: DomainAxes | None = None) -> dict:
    """The file-level metadata of a new index (`projection` only for a store on a local domain)."""
    lat, lon = ds["lat"].values, ds["lon"].values
    layout = WindowLayout.for_grid(grid, config.split, *grid_steps(lat, lon))
    projection = {"projection": domain.metadata()} if domain is not None else {}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "satflow_version": __version__,
        "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "store": {"path": str(store_path), "fingerprint": store_fingerprint,
                  "shape": [int(n) for n in ds["M"].shape], "features": [str(f) for f in ds["feature"].values]},
        "grid": grid.to_dict(),
        "windows": layout.to_dict(),
        "time_range": list(time_range),
        "parameters": config.model_dump(mode="json"),
        "history": [{"step": "build"}],
        **projection,
    }


def build_index(store_path: str | Path, out_path: str | Path, config: IndexConfig | None = None, *,
                client=None) -> IndexBuildResult:
    """Index every (time, patch) of a store into `out_path` (Parquet); reads only the mask.

    `client`: a `distributed.Client` or an `Executor` to run on; without one, dask's default scheduler is used.
    """
    executor = as_executor(client)
    from satflow.store import fingerprint, open_store

    started = clock.perf_counter()
    config = config or IndexConfig()
    store_path = Path(store_path).resolve()
    ds = open_store(store_path)
    store_fingerprint = fingerprint(store_path)
    lat, lon = ds["lat"].values, ds["lon"].values
    times = ds["time"].values  # datetime64[ns] or cftime dates
    features = tuple(str(f) for f in ds["feature"].values)
    grid = PatchGrid.square(len(lat), len(lon), config.patch_size, config.stride, wrap=is_global_lon(lon))
    t_start, t_stop = select_times(times, config)
    domain = DomainAxes.of_dataset(ds)
    patches = patch_table(grid, lat, lon, config, domain)
    if not len(patches):
        raise ValueError(f"index.bbox {config.bbox} contains no patch centre of the store {store_path}")
    selected = np.zeros(grid.shape[0] * grid.shape[1], dtype=bool)
    selected[patches.flat] = True
    ctx = RowContext(
        patches, index_times(times), features, grid.height, grid.width, config.max_nodata_fraction,
        config.min_feature_valid_fraction, config.per_feature_columns,
        time_splits(len(times), config.split) if config.split.mode == "time" else None,
    )
    blocks = time_block_counts(ds["M"].data[t_start:t_stop], grid, selected.reshape(grid.shape))
    to_rows, shared_ctx = dask.delayed(rows_for_time_block, pure=True), dask.delayed(ctx, pure=True)
    tasks = [to_rows(counts, t0 + t_start, shared_ctx) for t0, _, counts in blocks]
    metadata = build_metadata(store_path, store_fingerprint, ds, grid, config, (t_start, t_stop), domain)
    split_rows = dict.fromkeys(SPLITS, 0)
    schema = index_schema(list(features), config.per_feature_columns,
                          pa.timestamp("ns") if times.dtype.kind == "M" else pa.string(), projected=domain is not None)
    with IndexWriter(out_path, metadata, schema) as writer:
        for first in range(0, len(tasks), config.time_batch):
            for frame in executor.compute(tasks[first:first + config.time_batch]):
                writer.write(frame)
                for name, count in frame["split"].value_counts().items():
                    split_rows[name] += int(count)
    return IndexBuildResult(Path(out_path), writer.rows, len(patches), t_stop - t_start,
                            len(patches) * (t_stop - t_start), split_rows, clock.perf_counter() - started,
                            split_warnings(split_rows, config))
