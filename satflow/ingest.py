"""NetCDF archive -> satflow store, as a plan of plain data and a tiny Dask executor.

Inputs are read through the source protocol (`satflow.sources.base`): the plan and the tasks are
the same for every source kind (gridded files, binned swath windows, ...). Auxiliary products
(`ingest.aux_products`) are scanned the same way, paired with the time slots by
`satflow.sources.auxiliary.plan_aux_product`, attached to the regions, and read by the same tasks
after the primary features.

`plan_ingest` scans file metadata (no data), picks the reference grid and features, rejects
inputs that cannot join the cube, and lays out time slots and chunk-aligned regions. The plan is
printable (`--dry-run`) and testable without a cluster. `execute_plan` creates the store template
(or resizes it for `--append`) and submits one task per region; each task reads its files,
writes X/M and the per-step partial statistics, then flags its steps as ingested, so a re-run
skips finished regions and a killed worker's task is simply retried.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import threading
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satflow import __version__
from satflow.config import IngestConfig, SourceConfig
from satflow.runtime.executors import as_executor
from satflow.sources.auxiliary import (AuxiliaryError, AuxPlan, AuxReader, AuxSlot, fill_aux, plan_aux_product,
                                       scene_key, time_hours)
from satflow.sources.base import FileInfo, SourceError, group_inputs, read_input, scan_input
from satflow.sources.timeselect import is_active, select_steps
from satflow.sources.timecodec import as_time_array, encode_times, time_calendar
from satflow.store import (DIMS, StoreLayout, add_grid_coordinates, annotate, consolidate, create_template, finalize,
                           open_group, open_store, write_region)

log = logging.getLogger(__name__)


class IngestError(ValueError):
    """The ingest cannot start (no inputs, nothing readable, store mismatch)."""


@dataclass(frozen=True)
class Slot:
    """One store time step filled by one time index of one source file."""

    t: int
    time: object  # np.datetime64, or a cftime date (climatologies, model calendars)
    path: str
    file_step: int


@dataclass(frozen=True)
class Region:
    """A chunk-aligned block of time steps [t0, t1), written by one task."""

    t0: int
    t1: int
    slots: tuple[Slot, ...]
    aux: tuple[AuxSlot, ...] = ()  # auxiliary scenes mapped onto these steps (ingest.aux_products)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class IngestPlan:
    store: str
    layout: StoreLayout
    regions: list[Region]
    skipped: list[Skipped]
    infos: dict[str, FileInfo] = field(repr=False)
    mode: str = "create"  # create | resume | append
    t_offset: int = 0  # first new time step when appending
    aux: list[AuxPlan] = field(default_factory=list)  # one per auxiliary product, in config order

    def describe(self) -> str:
        times = self.layout.times
        lines = [
            f"ingest plan ({self.mode}) -> {self.store}",
            f"  grid      {len(self.layout.lat)} lat x {len(self.layout.lon)} lon "
            f"({self.layout.lat[0]:.3f}..{self.layout.lat[-1]:.3f}, {self.layout.lon[0]:.3f}..{self.layout.lon[-1]:.3f})",
            f"  features  {len(self.layout.features)}: {_abbreviate(self.layout.features)}",
            f"  time      {len(times)} steps {times[0]} .. {times[-1]}" if len(times) else "  time      0 steps",
            f"  chunks    {dict(zip(('time', 'feature', 'lat', 'lon'), self.layout.chunk_shape))}",
            f"  regions   {len(self.regions)} to write (one task each)",
        ]
        for region in self.regions[:5]:
            files = sorted({Path(s.path).name for s in region.slots})
            lines.append(f"    t[{region.t0}:{region.t1}] <- {', '.join(files)}")
        if len(self.regions) > 5:
            lines.append(f"    ... {len(self.regions) - 5} more")
        for aux in self.aux:
            lines += aux.describe(len(times))
        lines += [f"  skipped   {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def _abbreviate(names: Sequence[str], keep: int = 6) -> str:
    names = list(names)
    return ", ".join(names if len(names) <= keep else names[:3] + ["..."] + names[-2:])


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Paths, directories (their *.nc) and globs -> sorted unique file list; names what matched nothing."""
    found: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            matches = sorted(glob.glob(os.path.join(item, "*.nc")))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
        else:
            matches = [item] if os.path.exists(item) else []
        if not matches:
            raise IngestError(f"{item}: no such file or no file matches; check the path or glob")
        found.extend(matches)
    return sorted(dict.fromkeys(os.path.abspath(p) for p in found))


def _scan_or_skip(path: str, source: SourceConfig) -> FileInfo | Skipped:
    try:
        return scan_input(path, source)
    except SourceError as err:
        return Skipped(path, err.reason)


def _scan_all(paths: list[str], source: SourceConfig, client) -> list[FileInfo | Skipped]:
    # Metadata reads are HDF5-bound; worker processes sidestep the global HDF5 lock. A handful of
    # files is faster to scan here than to ship to workers.
    executor = as_executor(client if len(paths) >= 8 else None)
    return executor.gather_map(_scan_or_skip, paths, source, name="ingest-scan", retries=1)


def _grid_key(grid: FileInfo | StoreLayout) -> tuple:
    lat, lon = np.asarray(grid.lat, np.float64), np.asarray(grid.lon, np.float64)
    return (lat.shape, lon.shape, lat.round(6).tobytes(), lon.round(6).tobytes())


def _select_compatible(infos: list[FileInfo], reference: StoreLayout | None) -> tuple[list[FileInfo], list[Skipped]]:
    """Keep files on the reference grid with the reference features (the majority when none is given)."""
    if reference is None:
        grids = collections.Counter(_grid_key(i) for i in infos)
        grid = grids.most_common(1)[0][0]
        reference = next(i for i in infos if _grid_key(i) == grid)
    ref_grid = _grid_key(reference)
    ref_name = Path(getattr(reference, "path", "the store")).name
    kept, skipped = [], []
    for info in infos:
        if _grid_key(info) != ref_grid:
            skipped.append(Skipped(info.path, f"different grid ({len(info.lat)}x{len(info.lon)} vs "
                                   f"{len(reference.lat)}x{len(reference.lon)} in {ref_name}); "
                                   "regrid it or ingest it into another store"))
        elif time_calendar(info.times) != time_calendar(reference.times):
            skipped.append(Skipped(info.path, f"different calendar ({_calendar_name(info.times)} vs "
                                   f"{_calendar_name(reference.times)} in {ref_name}); one store holds one calendar: "
                                   "ingest it into another store"))
        elif tuple(info.features) != tuple(reference.features):
            missing = sorted(set(reference.features) - set(info.features))
            skipped.append(Skipped(info.path, f"different features (missing {_abbreviate(missing) or 'none'}); "
                                   "select common variables with --var"))
        else:
            kept.append(info)
    return kept, skipped


def _calendar_name(times: np.ndarray) -> str:
    calendar = time_calendar(times)
    return "standard" if calendar == "datetime64" else calendar


def _assign_times(infos: list[FileInfo], taken: dict, selection) -> tuple[list[tuple], list[Skipped]]:
    """(time, path, file_step) for every new selected time; a file repeating a known time is skipped whole."""
    entries, skipped = [], []
    for info in infos:
        steps = np.flatnonzero(select_steps(info.times, selection, info.lon))
        times = info.times[steps]
        clash = [t for t in times if t in taken]
        if clash or len(set(times.tolist())) != len(times):
            other = Path(taken[clash[0]]).name if clash else "itself"
            skipped.append(Skipped(info.path, f"duplicate time {clash[0] if clash else 'inside the file'} "
                                   f"(already from {other}); remove one of the two files"))
            continue
        for step, t in zip(steps.tolist(), times):
            taken[t] = info.path
            entries.append((t, info.path, step))
    entries.sort(key=lambda e: e[0])
    return entries, skipped


def _regions(slots: list[Slot], t_offset: int, time_chunk: int) -> list[Region]:
    """Group slots into time-chunk-aligned regions (chunks count from the store's t=0)."""
    by_chunk: dict[int, list[Slot]] = collections.defaultdict(list)
    for slot in slots:
        by_chunk[slot.t // time_chunk].append(slot)
    regions = []
    for chunk in sorted(by_chunk):
        group = by_chunk[chunk]
        regions.append(Region(group[0].t, group[-1].t + 1, tuple(group)))
    if t_offset % time_chunk and regions:
        # An append that starts inside a chunk would make two tasks write the same chunk.
        raise IngestError(f"cannot append at time step {t_offset}: not a multiple of the time chunk "
                          f"({time_chunk}); use ingest.chunks.time=1 for archives that grow")
    return regions


def plan_ingest(inputs: Sequence[str], store: str | Path | None, config: IngestConfig, *, append: bool = False,
                client=None) -> IngestPlan:
    """Scan inputs (metadata only) and lay out the store and its regions; performs no writes.

    A new store gets a `create` plan; the same command against an existing store gets a `resume`
    plan with only unfinished regions; `append=True` lays out new files after the last time step.
    `store=None` plans the cube alone (`open_archive`).
    """
    store = "" if store is None else str(store)
    scanned = _scan_all(expand_inputs(inputs), config.source, client)
    skipped = [s for s in scanned if isinstance(s, Skipped)]
    infos, left_out = group_inputs([s for s in scanned if not isinstance(s, Skipped)], config.source)
    skipped += [Skipped(path, reason) for path, reason in left_out]
    aux_inputs = {name: _scan_aux(name, product.inputs, product.source, client)
                  for name, product in config.aux_products.items()}
    existing = _existing_store(store) if store else None
    if existing is None:
        return _plan_new(store, config, infos, skipped, None, aux_inputs)
    _check_same_config(store, existing, config)
    if append:
        return _plan_new(store, config, infos, skipped, existing, aux_inputs)
    return _plan_resume(store, config, infos, skipped, existing, aux_inputs)


_AuxInputs = tuple[list[FileInfo], list[tuple[str, str]]]


def _scan_aux(name: str, inputs: list[str], source: SourceConfig, client) -> _AuxInputs:
    """An auxiliary product's inputs scanned and grouped like the primary's; (path, reason) per file left out."""
    try:
        paths = expand_inputs(inputs)
    except IngestError as err:
        raise IngestError(f"ingest.aux_products.{name}.inputs: {err}") from None
    scanned = _scan_all(paths, source, client)
    infos, left_out = group_inputs([s for s in scanned if not isinstance(s, Skipped)], source)
    return infos, [(s.path, s.reason) for s in scanned if isinstance(s, Skipped)] + list(left_out)


@dataclass(frozen=True)
class _ExistingStore:
    layout: StoreLayout
    files_by_time: dict
    ingested: np.ndarray
    config_json: str
    aux_scenes: dict[str, set[tuple[str, int]]] = field(default_factory=dict)  # already written, per product


def _existing_store(store: str) -> _ExistingStore | None:
    if not os.path.exists(os.path.join(store, "zarr.json")):
        return None
    group = open_group(store)
    ds = open_store(store, consolidated=False)
    chunks = dict(zip(("time", "feature", "lat", "lon"), group["X"].chunks))
    aux_products = tuple(str(a) for a in ds["aux_product"].values) if "aux_product" in ds.coords else ()
    layout = StoreLayout(ds["time"].values, tuple(str(f) for f in ds["feature"].values), ds["lat"].values,
                         ds["lon"].values, chunks, units=tuple(str(u) for u in ds["units"].values),
                         aux_products=aux_products)
    files = {t: str(f) for t, f in zip(layout.times, ds["source_file"].values)}
    return _ExistingStore(layout, files, ds["ingested"].values, str(group.attrs.get("satflow_config", "")),
                          _recorded_aux_scenes(ds, aux_products))


def _recorded_aux_scenes(ds, products: tuple[str, ...]) -> dict[str, set[tuple[str, int]]]:
    """Per product, the `scene_key` of every auxiliary scene the store already holds."""
    recorded: dict[str, set[tuple[str, int]]] = {}
    for k, name in enumerate(products):
        files, times = ds["aux_source_file"].values[:, k], ds["aux_time"].values[:, k]
        written = [i for i, f in enumerate(files) if str(f)]
        hours = time_hours(as_time_array([times[i] for i in written])) if written else []
        recorded[name] = {scene_key(files[i], h) for i, h in zip(written, hours)}
    return recorded


def _recorded_config(config: IngestConfig) -> str:
    """The settings that shape the store's content; inputs are recorded per step in `source_file`
    (and `aux_source_file` for auxiliary products)."""
    recorded = config.model_dump(mode="json", exclude={"inputs", "strict"})
    for product in recorded.get("aux_products", {}).values():
        product.pop("inputs", None)
    return json.dumps(recorded, sort_keys=True)


def _layout_settings(config_json: str) -> dict:
    ingest = json.loads(config_json) if config_json else {}
    settings = {key: ingest.get(key) for key in ("source", "chunks", "compression_level")}
    if ingest.get("aux_products"):  # stores written before auxiliary products compare as before
        settings["aux_products"] = ingest["aux_products"]
    return settings


def _check_same_config(store: str, existing: _ExistingStore, config: IngestConfig) -> None:
    """Resuming or appending with other reading rules would silently mix two cubes in one store."""
    changed = _changed_settings(_layout_settings(existing.config_json), _layout_settings(_recorded_config(config)))
    if changed:
        described = "; ".join(f"{key}: {_short(was)} in the store, {_short(now)} now" for key, was, now in changed)
        raise IngestError(f"{store}: exists and was written with different ingest settings ({described}); "
                          "use the same config to resume or append, --overwrite to rebuild, or another --out")


def _changed_settings(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(dotted key, stored value, new value) per setting that differs, e.g. `source.convert_units`.

    Sections are compared one level down, so the key names a setting as `--set ingest.KEY` spells it.
    """
    changed = []
    for key in sorted(old.keys() | new.keys()):
        was, now = old.get(key), new.get(key)
        if isinstance(was, dict) and isinstance(now, dict):
            changed += [(f"{key}.{sub}", was.get(sub), now.get(sub)) for sub in sorted(was.keys() | now.keys())
                        if was.get(sub) != now.get(sub)]
        elif was != now:
            changed.append((key, was, now))
    return changed


def _short(value: object) -> str:
    return "unset" if value is None else json.dumps(value, sort_keys=True)


def _plan_new(store: str, config: IngestConfig, infos: list[FileInfo], skipped: list[Skipped],
              existing: _ExistingStore | None, aux_inputs: dict[str, _AuxInputs] | None = None) -> IngestPlan:
    """A create plan, or an append plan after the existing store's last time step."""
    if not infos:
        raise IngestError("no readable input: " + "; ".join(f"{s.path}: {s.reason}" for s in skipped))
    reference = _primary_layout(existing.layout) if existing else None
    compatible, rejected = _select_compatible(infos, reference)
    selection = config.source.time_selection
    entries, duplicates = _assign_times(compatible, dict(existing.files_by_time) if existing else {}, selection)
    if compatible and not entries and is_active(selection) and not duplicates:
        raise IngestError(f"no time step of the {len(compatible)} input(s) passes ingest.source.time_selection "
                          f"({selection.model_dump(exclude_defaults=True)}); widen it or check the inputs' times")
    skipped = skipped + rejected + duplicates
    t_offset = len(existing.layout.times) if existing else 0
    if existing and entries and entries[0][0] <= existing.layout.times[-1]:
        raise IngestError(f"--append adds time steps after {existing.layout.times[-1]}, but {entries[0][1]} "
                          f"holds {entries[0][0]}; ingest it into a new store")
    slots = [Slot(t_offset + i, t, p, s) for i, (t, p, s) in enumerate(entries)]
    grid = reference or compatible[0]
    chunks = existing.layout.chunks if existing else config.chunks.model_dump()
    times = as_time_array([s.time for s in slots]) if slots else np.array([], "datetime64[ns]")
    primary_features, primary_units = tuple(grid.features), tuple(getattr(grid, "units", ()))
    all_times = as_time_array([*existing.layout.times, *times]) if existing else times
    aux = _plan_aux(config, aux_inputs or {}, all_times, t_offset, grid, len(primary_features),
                    existing.aux_scenes if existing else {})
    units = (primary_units or ("",) * len(primary_features)) + tuple(u for a in aux for u in a.units) \
        if aux else primary_units
    layout = StoreLayout(
        times=times, features=primary_features + tuple(f for a in aux for f in a.features),
        lat=np.asarray(grid.lat), lon=np.asarray(grid.lon),
        chunks=chunks, compression_level=config.compression_level,
        units=units, aux_products=tuple(config.aux_products),
    )
    regions = _regions(slots, t_offset, layout.chunk_shape[0] if slots else 1)
    regions = _attach_aux(regions, aux)
    skipped = skipped + [Skipped(path, f"auxiliary product {a.reader.name}: {reason}")
                         for a in aux for path, reason in a.skipped]
    return IngestPlan(store, layout, regions, skipped, {i.path: i for i in compatible},
                      mode="append" if existing else "create", t_offset=t_offset, aux=aux)


def _primary_layout(layout: StoreLayout) -> StoreLayout:
    """A store's layout without its auxiliary features (`<product>/<feature>`, trailing): what primary
    inputs must match."""
    n = sum(1 for f in layout.features if "/" in f and f.split("/", 1)[0] in layout.aux_products)
    if not n:
        return layout
    return dataclasses.replace(layout, features=layout.features[:-n], units=layout.units[:-n] if layout.units else ())


def _plan_aux(config: IngestConfig, aux_inputs: dict[str, _AuxInputs], times: np.ndarray, first_step: int,
              grid, n_primary: int, written: dict[str, set[tuple[str, int]]]) -> list[AuxPlan]:
    plans, offset = [], n_primary
    for name, product in config.aux_products.items():
        infos, left_out = aux_inputs[name]
        try:
            plan = plan_aux_product(name, product, infos, left_out, times, first_step, grid.lat, grid.lon, offset,
                                    written.get(name, set()))
        except AuxiliaryError as err:
            raise IngestError(str(err)) from None
        plans.append(plan)
        offset += len(plan.features)
    return plans


def _attach_aux(regions: list[Region], aux: list[AuxPlan]) -> list[Region]:
    if not aux:
        return regions
    by_step: dict[int, list[AuxSlot]] = collections.defaultdict(list)
    for plan in aux:
        for slot in plan.slots:
            by_step[slot.t].append(slot)
    return [Region(r.t0, r.t1, r.slots, tuple(s for t in range(r.t0, r.t1) for s in by_step.get(t, ())))
            for r in regions]


def _plan_resume(store: str, config: IngestConfig, infos: list[FileInfo], skipped: list[Skipped],
                 existing: _ExistingStore, aux_inputs: dict[str, _AuxInputs]) -> IngestPlan:
    """The same command again: the fresh plan must match the store; only unfinished regions remain."""
    fresh = _plan_new(store, config, infos, skipped, None, aux_inputs) if infos else None
    if fresh is None or not _same_layout(fresh.layout, existing.layout):
        raise IngestError(f"{store}: a store with a different layout exists (other inputs, variables or chunks); "
                          "use --append to add files, --overwrite to rebuild, or another --out")
    pending = [r for r in fresh.regions if not np.all(existing.ingested[r.t0:r.t1] == 1)]
    return IngestPlan(store, existing.layout, pending, fresh.skipped, fresh.infos, mode="resume", aux=fresh.aux)


def _same_layout(a: StoreLayout, b: StoreLayout) -> bool:
    return (a.features == b.features and np.array_equal(a.times, b.times) and np.allclose(a.lat, b.lat)
            and np.allclose(a.lon, b.lon) and a.chunk_shape == b.chunk_shape)


# --- execution ---------------------------------------------------------------------------------
def fill_steps(out: np.ndarray, t0: int, slots: Sequence[Slot], infos: dict[str, FileInfo],
               source: SourceConfig) -> tuple[list[str], list[Skipped]]:
    """Read the slots' files into `out` (step t goes to out[t - t0]); a file that fails leaves NaN steps.

    Returns the source file of every step ("" where unreadable) and the files that failed.
    """
    files = [""] * len(out)
    problems: list[Skipped] = []
    for path, group in _slots_by_file(slots).items():
        positions = np.array([slot.t - t0 for slot in group])
        steps = [slot.file_step for slot in group]
        contiguous = np.array_equal(positions, np.arange(positions[0], positions[0] + len(positions)))
        try:
            if contiguous:  # the usual case: decode straight into the block, no copy
                read_input(infos[path], source, steps=steps, out=out[positions[0]:positions[-1] + 1])
            else:
                out[positions] = read_input(infos[path], source, steps=steps)
        except SourceError as err:
            out[positions] = np.nan
            problems.append(Skipped(path, err.reason))
            continue
        for position in positions:
            files[position] = path
    return files, problems


_buffers = threading.local()


def _region_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """One float32 block per worker thread, reused by every region of that shape.

    A fresh array per task is a fresh mmap once it passes glibc's mmap threshold (a 0.25-degree
    step of 40 features is 166 MB): zeroed pages, faults and unmaps for every region.
    """
    buffer = getattr(_buffers, "block", None)
    if buffer is None or buffer.shape != shape:
        _buffers.block = buffer = np.empty(shape, dtype=np.float32)
    return buffer


@dataclass(frozen=True)
class _Readers:
    """What a task needs besides its region: the primary source and, per auxiliary product, its reader."""

    source: SourceConfig
    n_features: int
    shape_yx: tuple[int, int]
    aux: tuple[AuxReader, ...] = ()

    @property
    def n_primary(self) -> int:
        return self.aux[0].offset if self.aux else self.n_features


def fill_block(block: np.ndarray, t0: int, slots: Sequence[Slot], aux_slots: Sequence[AuxSlot],
               infos: dict[str, FileInfo], aux_infos: dict[str, dict[str, FileInfo]], readers: _Readers):
    """Primary features, then each auxiliary product's, of steps t0.. into `block`.

    Returns the source file per step, (file, time) per step and product, and the inputs that failed.
    """
    files, problems = fill_steps(block[:, :readers.n_primary], t0, slots, infos, readers.source)
    aux_used = [[] for _ in range(len(block))]
    for reader in readers.aux:
        mine = [s for s in aux_slots if s.product == reader.name]
        used, failed = fill_aux(block, t0, mine, reader, aux_infos.get(reader.name, {}))
        for step, pair in zip(aux_used, used):
            step.append(pair)
        problems += [Skipped(path, f"auxiliary product {reader.name}: {reason}") for path, reason in failed]
    return files, aux_used, problems


def ingest_region(store: str, region: Region, infos: dict[str, FileInfo], readers: _Readers,
                  aux_infos: dict[str, dict[str, FileInfo]] | None = None) -> list[Skipped]:
    """One task: read the region's files, write its steps. Unreadable data leaves NaN steps, reported."""
    block = _region_buffer((region.t1 - region.t0, readers.n_features, *readers.shape_yx))
    files, aux_used, problems = fill_block(block, region.t0, region.slots, region.aux, infos, aux_infos or {},
                                           readers)
    write_region(open_group(store, mode="r+", consolidated=True), region.t0, block, files,
                 aux_used if readers.aux else ())
    return problems


def _ingest_task(task: tuple, store: str, readers: _Readers | SourceConfig, n_features: int | None = None,
                 shape_yx: tuple[int, int] | None = None) -> list[Skipped]:
    """`task` is (region, its files' metadata[, its auxiliary files' metadata per product]). The older
    call with (source, n_features, shape_yx) instead of readers, still made by
    benchmarks/ingest/region_profile.py, ingests without auxiliary products."""
    region, infos, *aux_infos = task
    if not isinstance(readers, _Readers):
        readers = _Readers(readers, n_features, shape_yx)
    return ingest_region(store, region, infos, readers, aux_infos[0] if aux_infos else None)


def _slots_by_file(slots: Sequence[Slot]) -> dict[str, list[Slot]]:
    grouped: dict[str, list[Slot]] = collections.defaultdict(list)
    for slot in slots:
        grouped[slot.path].append(slot)
    return grouped


# --- the archive as a lazy cube ------------------------------------------------------------------
def _file_runs(slots: Sequence[Slot]) -> list[tuple[Slot, ...]]:
    """Consecutive time steps filled by the same file: one read task each."""
    runs: list[list[Slot]] = []
    for slot in slots:
        if runs and runs[-1][-1].path == slot.path and runs[-1][-1].t + 1 == slot.t:
            runs[-1].append(slot)
        else:
            runs.append([slot])
    return [tuple(run) for run in runs]


def _read_run(run: tuple[Slot, ...], aux_slots: tuple[AuxSlot, ...], info: FileInfo,
              aux_infos: dict[str, dict[str, FileInfo]], readers: _Readers) -> np.ndarray:
    block = np.empty((len(run), readers.n_features, *readers.shape_yx), dtype=np.float32)
    fill_block(block, run[0].t, run, aux_slots, {info.path: info}, aux_infos, readers)
    return block


def _readers(plan: IngestPlan, source: SourceConfig) -> _Readers:
    layout = plan.layout
    return _Readers(source, len(layout.features), (len(layout.lat), len(layout.lon)),
                    tuple(a.reader for a in plan.aux))


def _aux_infos_for(plan: IngestPlan, aux_slots: Sequence[AuxSlot]) -> dict[str, dict[str, FileInfo]]:
    """Each product's metadata of only the auxiliary files these slots read."""
    by_name = {a.reader.name: a for a in plan.aux}
    infos: dict[str, dict[str, FileInfo]] = collections.defaultdict(dict)
    for slot in aux_slots:
        infos[slot.product][slot.scene.path] = by_name[slot.product].infos[slot.scene.path]
    return dict(infos)


def grid_coordinates(source: SourceConfig) -> dict | None:
    """The extra coordinates of the target grid: y/x, 2-D latitude/longitude and `crs` on a local domain."""
    if source.kind != "regrid" or source.domain is None:
        return None
    from satflow.sources.domain import domain_coordinates

    return domain_coordinates(source.domain, source.lon_convention)


def plan_dataset(plan: IngestPlan, source: SourceConfig):
    """The planned cube as a lazy xr.Dataset: `X`, `M`, coords, `units`, `source_file` (and with auxiliary
    products `aux_source_file`/`aux_time`; on a local domain y/x, 2-D latitude/longitude and `crs`).

    One task reads each file (through the source, exactly as the ingest does) and the result is
    chunked like the store, so `to_zarr` or any reduction streams it chunk by chunk. A file that
    fails to read gives NaN steps (the store then records "" as its source file).
    """
    import dask
    import dask.array as da
    import xarray as xr

    layout = plan.layout
    if plan.mode != "create":
        raise IngestError(f"{plan.store}: the lazy cube describes a new store; this plan {plan.mode}s an existing one")
    slots = [slot for region in plan.regions for slot in region.slots]
    aux_slots = [slot for region in plan.regions for slot in region.aux]
    readers = _readers(plan, source)
    n_features, shape_yx = readers.n_features, readers.shape_yx
    read = dask.delayed(_read_run, pure=False)
    pieces = []
    for run in _file_runs(slots):
        run_aux = tuple(s for s in aux_slots if run[0].t <= s.t <= run[-1].t)
        pieces.append(da.from_delayed(read(run, run_aux, plan.infos[run[0].path], _aux_infos_for(plan, run_aux),
                                           readers), (len(run), n_features, *shape_yx), dtype=np.float32))
    x = da.concatenate(pieces, axis=0).rechunk(layout.chunk_shape) if pieces else \
        da.empty((0, n_features, *shape_yx), dtype=np.float32, chunks=layout.chunk_shape)
    ds = xr.Dataset(
        {"X": (DIMS, x), "M": (DIMS, da.isfinite(x).astype(np.uint8)),
         "source_file": (("time",), np.array([slot.path for slot in slots], dtype=object)),
         "units": (("feature",), np.array(layout.units or ("",) * n_features, dtype=object))},
        coords={"time": ("time", layout.times), "feature": ("feature", np.array(layout.features, dtype=object)),
                "lat": ("lat", np.asarray(layout.lat, np.float64)), "lon": ("lon", np.asarray(layout.lon, np.float64))},
        attrs={"satflow_version": __version__, "Conventions": "CF-1.8"},
    )
    annotate(ds)
    add_grid_coordinates(ds, grid_coordinates(source))
    if plan.aux:
        _add_planned_aux_provenance(ds, plan)
    return ds


def _add_planned_aux_provenance(ds, plan: IngestPlan) -> None:
    """`aux_source_file` and `aux_time` as planned (a file that fails to read is still named here)."""
    n_time, names = len(plan.layout.times), [a.reader.name for a in plan.aux]
    files = np.full((n_time, len(names)), "", dtype=object)
    times = np.full((n_time, len(names)), None, dtype=object)
    for k, aux in enumerate(plan.aux):
        for slot in aux.slots:
            files[slot.t, k], times[slot.t, k] = slot.scene.path, slot.scene.time
    ds.coords["aux_product"] = ("aux_product", np.asarray(names, dtype=object))
    ds["aux_source_file"] = (("time", "aux_product"), files)
    if times.size and all(t is None or isinstance(t, np.datetime64) for t in times.flat):
        times = np.array([[np.datetime64("NaT") if t is None else t for t in row] for row in times], "datetime64[ns]")
    ds["aux_time"] = (("time", "aux_product"), times)


def describe_cube(ds) -> str:
    """A few lines on the lazy cube: variables, shape, size, chunks and tasks (nothing is computed)."""
    x = ds["X"].data
    sizes = ", ".join(f"{dim}: {n}" for dim, n in ds["X"].sizes.items())
    chunk = ", ".join(f"{dim}: {n}" for dim, n in zip(DIMS, x.chunksize))
    return "\n".join([
        f"lazy cube (satflow.open_archive): X float32 ({sizes}) {x.nbytes / 2**30:.2f} GiB, "
        f"M uint8, source_file, units" + (", aux_source_file, aux_time" if "aux_time" in ds else ""),
        f"  dask      {x.npartitions} chunks of ({chunk}), {len(x.dask)} tasks; computed on demand",
    ])


def open_archive(inputs: str | Sequence[str], config=None, *, client=None):
    """NetCDF files, directories or globs -> the cube `satflow ingest` would write, lazily (writes nothing).

    `config` is a SatflowConfig, its `ingest` section, or None for the defaults. Scanning (metadata
    only) runs on `client` when given; the values are read when computed, one task per file.
    """
    from satflow.config import SatflowConfig, load_config

    if config is None:
        config = load_config().ingest
    elif isinstance(config, SatflowConfig):
        config = config.ingest
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    plan = plan_ingest([str(i) for i in inputs], None, config, client=client)
    return plan_dataset(plan, config.source)


@dataclass
class IngestReport:
    store: str
    written: int
    skipped: list[Skipped]
    time_steps: int

    def describe(self) -> str:
        lines = [f"ingested {self.written} region(s) into {self.store} ({self.time_steps} time steps)"]
        if self.skipped:
            lines.append(f"{len(self.skipped)} input(s) skipped:")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def _prepare_store(plan: IngestPlan, config: IngestConfig) -> None:
    attrs = {"satflow_config": _recorded_config(config), "satflow_version": __version__}
    if plan.mode == "create":
        create_template(plan.store, plan.layout, attrs, grid_coordinates(config.source))
    elif plan.mode == "append" and plan.regions:
        _extend_time(plan)
    open_group(plan.store, mode="r+").attrs.pop("satflow_fingerprint", None)  # stale until finalised
    consolidate(plan.store)  # region tasks open the final layout with one metadata read


def _extend_time(plan: IngestPlan) -> None:
    """Grow every time-dimensioned array and write the new time coordinates."""
    group = open_group(plan.store, mode="r+")
    new_times = as_time_array([s.time for r in plan.regions for s in r.slots])
    n_old = group["X"].shape[0]
    n_new = n_old + len(new_times)
    for name, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if dims and dims[0] == "time":
            array.resize((n_new, *array.shape[1:]))
    time_array = group["time"]
    units, calendar = time_array.attrs["units"], time_array.attrs.get("calendar", "proleptic_gregorian")
    time_array[n_old:] = np.asarray(encode_times(new_times, units, calendar), dtype=time_array.dtype)


def execute_plan(plan: IngestPlan, config: IngestConfig, client=None, *, progress: bool = True) -> IngestReport:
    """Write every region of the plan (on `client` if given), then fold the statistics."""
    _prepare_store(plan, config)
    readers = _readers(plan, config.source)
    # Each task carries only its own files' metadata: broadcasting every FileInfo to every
    # worker would cost O(files x workers) memory on archives of thousands of files.
    tasks = [(region, _infos_for(plan, region), _aux_infos_for(plan, region.aux)) for region in plan.regions]
    problems: list[Skipped] = []
    for _, skipped in as_executor(client).map(_ingest_task, tasks, plan.store, readers, name="ingest-region",
                                              retries=2, progress=progress):
        problems += skipped
    finalize(plan.store)
    n_steps = open_group(plan.store)["X"].shape[0]
    return IngestReport(plan.store, len(plan.regions), plan.skipped + problems, n_steps)


def _infos_for(plan: IngestPlan, region: Region) -> dict[str, FileInfo]:
    return {slot.path: plan.infos[slot.path] for slot in region.slots}


def run_ingest(inputs: Sequence[str], store: str | Path, config: IngestConfig, *, client=None,
               append: bool = False, overwrite: bool = False, progress: bool = True) -> IngestReport:
    """Plan and execute; the Python entry point behind `satflow ingest`."""
    if overwrite and os.path.exists(store):
        import shutil

        shutil.rmtree(store)
    plan = plan_ingest(inputs, store, config, append=append, client=client)
    return execute_plan(plan, config, client, progress=progress)
