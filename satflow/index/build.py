"""Build the patch index of a store: one Parquet row per usable (time, patch).

Like every stage: `scan_index` reads the store's facts (metadata only), `plan_index` lays out the
grid, patches and time blocks without I/O (`satflow.index.plan`), and the executor maps one task
per time block (`satflow.index.tasks.index_rows`: reads only the mask `M`, counts, filters,
splits). Row groups stream into the Parquet file in time order, `index.time_batch` blocks per
executor call, so memory stays bounded however long the archive is.
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from satflow.index.io import FORMAT, FORMAT_VERSION, IndexWriter
from satflow.index.options import IndexConfig
from satflow.index.plan import IndexFacts, IndexPlan, plan_index
from satflow.index.projection import METRE_COLUMNS, DomainAxes
from satflow.index.splits import SPLITS
from satflow.index.tasks import index_rows
from satflow.runtime.executors import Executor, as_executor
from satflow.version import __version__

BASE_COLUMNS = (
    ("patch_id", pa.string()), ("t", pa.int32()), ("time", pa.timestamp("ns")),
    ("y0", pa.int32()), ("x0", pa.int32()), ("height", pa.int32()), ("width", pa.int32()),
    ("lat0", pa.float64()), ("lat1", pa.float64()), ("lon0", pa.float64()), ("lon1", pa.float64()),
    ("lat_c", pa.float64()), ("lon_c", pa.float64()),
    ("valid_frac", pa.float64()), ("min_feature_valid_frac", pa.float64()),
)
TAIL_COLUMNS = (("window_id", pa.int64()), ("split", pa.string()))


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


def build_metadata(facts: IndexFacts, plan: IndexPlan, config: IndexConfig) -> dict:
    """The file-level metadata of a new index (`projection` only for a store on a local domain)."""
    projection = {"projection": facts.domain.metadata()} if facts.domain is not None else {}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "satflow_version": __version__,
        "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "store": {"path": facts.store, "fingerprint": facts.fingerprint,
                  "shape": list(facts.shape), "features": list(facts.features)},
        "grid": plan.grid.to_dict(),
        "windows": plan.windows.to_dict(),
        "time_range": list(plan.time_range),
        "parameters": config.model_dump(mode="json"),
        "history": [{"step": "build"}],
        **projection,
    }


def scan_index(store_path: str | Path) -> IndexFacts:
    """The store's facts the index plan needs (metadata and coordinates; no mask values)."""
    from satflow.store import fingerprint, open_group, open_store

    path = Path(store_path).resolve()
    group = open_group(path)
    ds = open_store(path)
    return IndexFacts(
        store=str(path), fingerprint=fingerprint(path), shape=tuple(int(n) for n in group["M"].shape),
        chunks=tuple(int(n) for n in group["M"].chunks), features=tuple(str(f) for f in ds["feature"].values),
        times=ds["time"].values, lat=ds["lat"].values, lon=ds["lon"].values, domain=DomainAxes.of_dataset(ds),
    )


def build_index(store_path: str | Path, out_path: str | Path, config: IndexConfig | None = None, *,
                client=None) -> IndexBuildResult:
    """Index every (time, patch) of a store into `out_path` (Parquet); reads only the mask.

    `client`: a `distributed.Client` or an `Executor` to run on; without one, the tasks run in this process.
    """
    started = clock.perf_counter()
    config = config or IndexConfig()
    facts = scan_index(store_path)
    plan = plan_index(facts, config)
    schema = index_schema(list(facts.features), config.per_feature_columns,
                          pa.timestamp("ns") if facts.times.dtype.kind == "M" else pa.string(),
                          projected=facts.domain is not None)
    split_rows = dict.fromkeys(SPLITS, 0)
    with IndexWriter(out_path, build_metadata(facts, plan, config), schema) as writer:
        for frame in _frames_in_time_order(plan, as_executor(client), config.time_batch):
            writer.write(frame)
            for name, count in frame["split"].value_counts().items():
                split_rows[name] += int(count)
    n_steps = plan.time_range[1] - plan.time_range[0]
    return IndexBuildResult(Path(out_path), writer.rows, plan.locations, n_steps, plan.locations * n_steps,
                            split_rows, clock.perf_counter() - started, split_warnings(split_rows, config))


def _frames_in_time_order(plan: IndexPlan, executor: Executor, batch: int):
    """Each time block's rows, in time order; `batch` blocks per executor call bound the memory held."""
    for first in range(0, len(plan.blocks), batch):
        yield from executor.gather_map(index_rows, plan.blocks[first:first + batch], plan.job, name="index-rows",
                                       retries=2)
