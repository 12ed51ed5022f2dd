"""Ingest planning: from scanned facts (`satflow.ingest.facts`, gathered by `satflow.ingest.scan`) pick the
grid and features, lay out time slots, chunk-aligned regions and auxiliary pairings. Pure: no file,
no store, no client; the plan is plain data, printable (`--dry-run`) and testable without files."""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satflow.ingest.facts import IngestFacts, ProductFacts, Skipped, StoreFacts
from satflow.ingest.inputs import IngestError
from satflow.ingest.options import IngestConfig
from satflow.sources.auxiliary import AuxiliaryError, AuxPlan, AuxSlot, plan_aux_product
from satflow.sources.base import FileInfo
from satflow.sources.options import SourceConfig
from satflow.sources.timecodec import as_time_array, time_calendar
from satflow.sources.timeselect import is_active, select_steps
from satflow.store import StoreLayout


# A task writes runs of consecutive regions up to this many bytes of float32 steps: on its own, one
# small step (4 x 8 cells) cost 31 ms of task, metadata and marker writes against 9 ms a file for xarray
# (issue 20). A 0.5-degree AMSU step (15 x 361 x 720, 15.6 MB) still gets a task of its own or two.
TASK_BYTES = 32 * 2**20
MIN_TASKS = 16  # but at least this many tasks (when there are regions enough), so every worker gets some


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

    def task_regions(self) -> list[Region]:
        """The regions as the tasks write them: runs of consecutive regions merged (see `batch_regions`)."""
        _, n_features, n_lat, n_lon = self.layout.shape
        return batch_regions(self.regions, n_features * n_lat * n_lon * 4)

    def describe(self) -> str:
        times = self.layout.times
        lines = [
            f"ingest plan ({self.mode}) -> {self.store}",
            f"  grid      {len(self.layout.lat)} lat x {len(self.layout.lon)} lon "
            f"({self.layout.lat[0]:.3f}..{self.layout.lat[-1]:.3f}, {self.layout.lon[0]:.3f}..{self.layout.lon[-1]:.3f})",
            f"  features  {len(self.layout.features)}: {_abbreviate(self.layout.features)}",
            f"  time      {len(times)} steps {times[0]} .. {times[-1]}" if len(times) else "  time      0 steps",
            f"  chunks    {dict(zip(('time', 'feature', 'lat', 'lon'), self.layout.chunk_shape))}",
            f"  regions   {len(self.regions)} to write in {len(self.task_regions())} task(s)",
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


def batch_regions(regions: Sequence[Region], step_bytes: int, task_bytes: int = TASK_BYTES,
                  min_tasks: int = MIN_TASKS) -> list[Region]:
    """Merge runs of consecutive regions into larger regions, one per task, of at most `task_bytes`
    (`step_bytes` per time step) and into at least `min_tasks` tasks where there are steps enough.

    A region larger than that stays alone; regions with a gap between them (a resume) never merge.
    Every step keeps its own `ingested` marker, written after the merged region's data.
    """
    total = sum(r.t1 - r.t0 for r in regions)
    per_task = max(1, min(task_bytes // max(step_bytes, 1), -(-total // min_tasks)))
    batches: list[list[Region]] = []
    for region in regions:
        last = batches[-1] if batches else None
        if last and last[-1].t1 == region.t0 and region.t1 - last[0].t0 <= per_task:
            last.append(region)
        else:
            batches.append([region])
    return [_merged(batch) for batch in batches]


def _merged(batch: list[Region]) -> Region:
    if len(batch) == 1:
        return batch[0]
    return Region(batch[0].t0, batch[-1].t1, tuple(s for r in batch for s in r.slots),
                  tuple(a for r in batch for a in r.aux))


def plan_ingest(facts: IngestFacts, config: IngestConfig, *, append: bool = False) -> IngestPlan:
    """Lay out the store and its regions from scanned facts; reads and writes nothing.

    No store in the facts gives a `create` plan; an existing store gives a `resume` plan with only
    unfinished regions, or with `append=True` an `append` plan of the new inputs after its last
    time step. `config` must be the one the facts were scanned with.
    """
    existing = facts.existing
    if existing is None:
        return _plan_new(facts.store, config, facts.inputs, facts.skipped, None, facts.aux)
    _check_same_config(facts.store, existing, config)
    if append:
        return _plan_new(facts.store, config, facts.inputs, facts.skipped, existing, facts.aux)
    return _plan_resume(facts.store, config, facts.inputs, facts.skipped, existing, facts.aux)


def recorded_config(config: IngestConfig) -> str:
    """The settings that shape the store's content; inputs are recorded per step in `source_file`
    (and `aux_source_file` for auxiliary products)."""
    recorded = config.model_dump(mode="json", exclude={"inputs", "strict"})
    for product in recorded.get("aux_products", {}).values():
        product.pop("inputs", None)
    return json.dumps(recorded, sort_keys=True)


def _layout_settings(config_json: str) -> dict:
    ingest = json.loads(config_json) if config_json else {}
    settings = {key: ingest.get(key) for key in ("source", "chunks", "compression_level", "codec")}
    if ingest.get("aux_products"):  # stores written before auxiliary products compare as before
        settings["aux_products"] = ingest["aux_products"]
    return settings


def _check_same_config(store: str, existing: StoreFacts, config: IngestConfig) -> None:
    """Resuming or appending with other reading rules would silently mix two cubes in one store."""
    changed = _changed_settings(_layout_settings(existing.config_json), _layout_settings(recorded_config(config)))
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
              existing: StoreFacts | None, aux_inputs: dict[str, ProductFacts] | None = None) -> IngestPlan:
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


def _plan_aux(config: IngestConfig, aux_inputs: dict[str, ProductFacts], times: np.ndarray, first_step: int,
              grid, n_primary: int, written: dict[str, set[tuple[str, int]]]) -> list[AuxPlan]:
    plans, offset = [], n_primary
    for name, product in config.aux_products.items():
        if name not in aux_inputs:
            raise IngestError(f"ingest.aux_products.{name}: the scanned facts hold no scan of this product; "
                              "scan with the config you plan with")
        facts = aux_inputs[name]
        try:
            plan = plan_aux_product(name, product, facts.inputs, facts.left_out, times, first_step, grid.lat,
                                    grid.lon, offset, written.get(name, set()))
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
                 existing: StoreFacts, aux_inputs: dict[str, ProductFacts]) -> IngestPlan:
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


def grid_coordinates(source: SourceConfig) -> dict | None:
    """The extra coordinates of the target grid: y/x, 2-D latitude/longitude and `crs` on a local domain."""
    if source.kind != "regrid" or source.domain is None:
        return None
    from satflow.sources.domain import domain_coordinates

    return domain_coordinates(source.domain, source.lon_convention)
