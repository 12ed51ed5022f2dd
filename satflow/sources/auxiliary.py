"""Auxiliary products: a second source co-located with the primary store's grid and time steps.

convml_tt calls them `aux_products` (cloud-top height next to GOES-16 radiances, OSTIA sea-surface
temperature next to an ocean reanalysis). Each product is read by any registered source kind and
lands in the store as features `<product>/<feature>` of the same `X` and `M`.

Pairing is plain data (`pair_scenes`, `plan_aux_product`: no I/O, printable, testable alone), on
times as hours in the primary's calendar:
- `single_scene_per_aux_time` (default): each auxiliary time goes to the primary time nearest to it,
  if at most `dt_aux` away, so an auxiliary scene fills at most one primary step. Ties: an auxiliary
  time exactly between two primary times goes to the earlier one; when several auxiliary times claim
  the same primary time the nearest wins, and of equally near ones the earlier auxiliary time.
- `all_scenes_within_dt_aux`: each primary time takes the auxiliary time nearest to it if at most
  `dt_aux / 2` away (an auxiliary scene may fill several steps); equally near: the earlier one.
- `dt_aux` not given: the smallest span between two distinct auxiliary times (after the product's
  own `source.time_selection`).
Bounds are inclusive.

Reading (`fill_aux`): the paired scenes' values come through `satflow.sources.base.read_input`, so
their masks are carried as NaN. On a primary local domain the product's source is kind `regrid`
onto that same domain (the config fills it in). On a primary lat/lon grid an auxiliary lat/lon grid
that differs is resampled onto it here (`resample_lat_lon`, nearest or bilinear): an output cell is
valid only if every input cell it draws on is valid, and cells beyond the auxiliary grid are invalid.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satflow.grid import covers_all_longitudes
from satflow.sources.base import INPUT_SEPARATOR, FileInfo, SourceError, read_input
from satflow.sources.options import AuxProductConfig, SourceConfig
from satflow.sources.timecodec import as_time_array, encode_times, iso_times, time_calendar
from satflow.sources.timeselect import select_steps
from satflow.sources.windows import WINDOW_COUNT

SINGLE_SCENE = "single_scene_per_aux_time"
ALL_SCENES = "all_scenes_within_dt_aux"
_EPSILON_HOURS = 1e-6  # encoding to float hours is exact to far below a millisecond; bounds are inclusive


class AuxiliaryError(ValueError):
    """An auxiliary product cannot be planned; the message names the product and what to do."""


# --- pairing (pure) ----------------------------------------------------------------------------
def time_hours(times: np.ndarray) -> np.ndarray:
    """Times as float hours since 1970-01-01 in their own calendar (datetime64 or cftime)."""
    times = np.asarray(times)
    if not times.size:
        return np.zeros(0)
    calendar = time_calendar(times)
    calendar = "proleptic_gregorian" if calendar == "datetime64" else calendar
    return np.asarray(encode_times(times, "hours since 1970-01-01 00:00:00", calendar), np.float64)


def infer_dt_hours(aux_hours: np.ndarray) -> float | None:
    """The smallest span between two distinct auxiliary times (None with fewer than two)."""
    spans = np.diff(np.unique(np.asarray(aux_hours, np.float64)))
    spans = spans[spans > _EPSILON_HOURS]
    return float(spans.min()) if spans.size else None


def pair_scenes(primary_hours: np.ndarray, aux_hours: np.ndarray, strategy: str, dt_hours: float) -> np.ndarray:
    """For each primary time, the index of the auxiliary time mapped onto it, or -1 (see module docstring)."""
    primary, aux = np.asarray(primary_hours, np.float64), np.asarray(aux_hours, np.float64)
    pairs = np.full(primary.size, -1, np.int64)
    if not primary.size or not aux.size:
        return pairs
    if strategy == ALL_SCENES:
        nearest, distance = _nearest(aux, primary)
        within = distance <= dt_hours / 2 + _EPSILON_HOURS
        pairs[within] = nearest[within]
        return pairs
    if strategy != SINGLE_SCENE:
        raise ValueError(f"unknown scene_mapping_strategy {strategy!r}; use {SINGLE_SCENE} or {ALL_SCENES}")
    nearest, distance = _nearest(primary, aux)
    best = np.full(primary.size, np.inf)
    for j in np.argsort(aux, kind="stable"):  # earlier auxiliary times first: they keep a tie
        i = nearest[j]
        if distance[j] <= dt_hours + _EPSILON_HOURS and distance[j] < best[i] - _EPSILON_HOURS:
            best[i], pairs[i] = distance[j], j
    return pairs


def _nearest(candidates: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per target: the index of the nearest candidate (the earlier of two equally near) and the distance."""
    order = np.argsort(candidates, kind="stable")
    ordered = candidates[order]
    right = np.clip(np.searchsorted(ordered, targets, side="left"), 0, ordered.size - 1)
    left = np.clip(right - 1, 0, ordered.size - 1)
    take_left = np.abs(targets - ordered[left]) <= np.abs(ordered[right] - targets) + _EPSILON_HOURS
    chosen = np.where(take_left, left, right)
    return order[chosen], np.abs(ordered[chosen] - targets)


# --- the plan of one product ---------------------------------------------------------------------
@dataclass(frozen=True)
class AuxScene:
    """One auxiliary time: the input (file) and its time index."""

    time: object
    path: str
    file_step: int


@dataclass(frozen=True)
class AuxSlot:
    """Store time step `t` takes the auxiliary scene `scene` for product `product`."""

    t: int
    product: str
    scene: AuxScene


@dataclass(frozen=True, eq=False)
class AuxReader:
    """How one product's values reach the primary grid (picklable; sent to every region task)."""

    name: str
    source: SourceConfig
    method: str
    offset: int  # index of the product's first feature in X
    n_features: int
    lat: np.ndarray  # the primary grid
    lon: np.ndarray
    on_primary_grid: bool  # the source reads straight onto the primary grid (a domain)


@dataclass
class AuxPlan:
    reader: AuxReader
    strategy: str
    dt_hours: float
    dt_inferred: bool
    features: tuple[str, ...]  # <product>/<feature>
    units: tuple[str, ...]
    scenes: list[AuxScene]
    slots: list[AuxSlot]  # the steps this plan writes that have a scene
    infos: dict[str, FileInfo] = field(repr=False)
    skipped: list[tuple[str, str]]

    def describe(self, n_steps: int) -> list[str]:
        name, reader = self.reader.name, self.reader
        dt = f"{self.dt_hours:g} h ({'inferred' if self.dt_inferred else 'given'})"
        lines = [f"  aux       {name}: {len(self.features)} feature(s) {', '.join(self.features[:4])}"
                 f"{' ...' if len(self.features) > 4 else ''} from {len(self.scenes)} scene(s)",
                 f"            {self.strategy}, dt_aux {dt}: {len(self.slots)} of {n_steps} step(s) mapped; "
                 + ("read onto the primary domain" if reader.on_primary_grid else f"{reader.method} onto the "
                    "primary grid where the grids differ")]
        for slot in self.slots[:3]:
            lines.append(f"    t={slot.t} <- {input_name(slot.scene.path)}[{slot.scene.file_step}] "
                         f"({iso_times(np.array([slot.scene.time]))[0]})")
        if len(self.slots) > 3:
            lines.append(f"    ... {len(self.slots) - 3} more")
        return lines


def input_name(path: str) -> str:
    """A file's name, or for an input of several files (a time window) the first and last and their count."""
    files = path.split(INPUT_SEPARATOR)
    return Path(files[0]).name if len(files) == 1 else f"{Path(files[0]).name}..{Path(files[-1]).name} ({len(files)} files)"


def plan_aux_product(name: str, product: AuxProductConfig, inputs: list[FileInfo], skipped: list[tuple[str, str]],
                     primary_times: np.ndarray, first_step: int, primary_lat: np.ndarray, primary_lon: np.ndarray,
                     feature_offset: int, written: set[tuple[str, int]] = frozenset()) -> AuxPlan:
    """Pair the product's scanned inputs with the primary time axis. Steps before `first_step` are already
    written (append): only steps from there on get slots, and with `single_scene_per_aux_time` the scenes
    `written` holds (`scene_key`s already in the store) stay with the step they fill. Pure: no file is read."""
    skipped = list(skipped)
    where = f"ingest.aux_products.{name}"
    if not inputs:
        detail = "; ".join(f"{Path(p).name}: {r}" for p, r in skipped) or "no input"
        raise AuxiliaryError(f"{where}: no readable auxiliary input ({detail}); fix aux_products.{name}.inputs")
    calendar = time_calendar(primary_times)
    kept = []
    features = collections.Counter(i.features for i in inputs).most_common(1)[0][0]
    for info in inputs:
        if len(primary_times) and time_calendar(info.times) != calendar:
            skipped.append((info.path, f"calendar {time_calendar(info.times)} differs from the primary store's "
                            f"({calendar}); times of two calendars cannot be paired"))
        elif info.features != features:
            skipped.append((info.path, f"different features than the other {name} inputs "
                            f"({', '.join(info.features)} vs {', '.join(features)}); select common ones with "
                            f"aux_products.{name}.source.variables"))
        else:
            kept.append(info)
    scenes, duplicates = _scenes(kept, product.source)
    skipped += duplicates
    aux_hours = time_hours(as_time_array([s.time for s in scenes])) if scenes else np.zeros(0)
    dt_hours, inferred = product.dt_aux_hours, False
    if dt_hours is None:
        dt_hours, inferred = infer_dt_hours(aux_hours), True
        if dt_hours is None:
            raise AuxiliaryError(f"{where}: cannot infer dt_aux from {len(scenes)} auxiliary time(s); set "
                                 f"aux_products.{name}.dt_aux (e.g. PT30M or P1D)")
    if written and product.scene_mapping_strategy == SINGLE_SCENE:  # dt stays inferred from every scene
        free = np.array([scene_key(s.path, h) not in written for s, h in zip(scenes, aux_hours)], bool)
        scenes, aux_hours = [s for s, keep in zip(scenes, free) if keep], aux_hours[free]
    pairs = pair_scenes(time_hours(primary_times), aux_hours, product.scene_mapping_strategy, dt_hours)
    slots = [AuxSlot(t, name, scenes[j]) for t, j in enumerate(pairs.tolist()) if j >= 0 and t >= first_step]
    on_domain = product.source.kind == "regrid"
    reader = AuxReader(name, product.source, product.method, feature_offset, len(features),
                       np.asarray(primary_lat), np.asarray(primary_lon), on_domain)
    units = kept[0].units if kept and kept[0].units else ("",) * len(features)
    used = {s.scene.path for s in slots}
    return AuxPlan(reader, product.scene_mapping_strategy, dt_hours, inferred,
                   tuple(f"{name}/{f}" for f in features), tuple(units), scenes, slots,
                   {i.path: i for i in kept if i.path in used}, skipped)


def scene_key(path: str, hours: float) -> tuple[str, int]:
    """An auxiliary scene's identity: its file and time to the second (what the store's provenance holds)."""
    return str(path), int(round(float(hours) * 3600.0))


def _scenes(infos: list[FileInfo], source: SourceConfig) -> tuple[list[AuxScene], list[tuple[str, str]]]:
    """Every selected time of every input, in time order; an input repeating a known time is left out whole."""
    scenes, skipped, taken = [], [], {}
    for info in infos:
        steps = np.flatnonzero(select_steps(info.times, source.time_selection, info.lon))
        times = [info.times[s] for s in steps]
        clash = next((t for t in times if t in taken), None)
        if clash is not None or len(set(times)) != len(times):
            other = Path(taken[clash]).name if clash is not None else "itself"
            skipped.append((info.path, f"duplicate auxiliary time {clash if clash is not None else ''} "
                            f"(already from {other}); remove one of the two files"))
            continue
        for step, t in zip(steps.tolist(), times):
            taken[t] = info.path
            scenes.append(AuxScene(t, info.path, step))
    order = np.argsort(time_hours(as_time_array([s.time for s in scenes])), kind="stable") if scenes else []
    return [scenes[k] for k in order], skipped


# --- reading onto the primary grid ---------------------------------------------------------------
def fill_aux(block: np.ndarray, t0: int, slots: Sequence[AuxSlot], reader: AuxReader,
             infos: dict[str, FileInfo]) -> tuple[list[tuple[str, object]], list[tuple[str, str]]]:
    """Write the product's features of steps t0.. into `block` (NaN where no scene maps or it is unreadable).

    Returns the (file, time) used per step (("", None) where none) and (path, reason) per failed input.
    """
    features = slice(reader.offset, reader.offset + reader.n_features)
    block[:, features] = np.nan
    used: list[tuple[str, object]] = [("", None)] * block.shape[0]
    problems = []
    by_file: dict[str, list[AuxSlot]] = collections.defaultdict(list)
    for slot in slots:
        by_file[slot.scene.path].append(slot)
    for path, group in by_file.items():
        info = infos[path]
        # An input's step may fill several primary steps (all_scenes_within_dt_aux): read each step once.
        steps, inverse = np.unique([s.scene.file_step for s in group], return_inverse=True)
        try:
            values = read_input(info, reader.source, steps=steps.tolist(), problems=problems)
        except SourceError as err:
            problems.append((path, err.reason))
            continue
        if not reader.on_primary_grid:
            values = resample_lat_lon(values, info.lat, info.lon, reader.lat, reader.lon, reader.method)
            counts = [k for k, name in enumerate(info.features) if name == WINDOW_COUNT]
            values[:, counts] = np.rint(values[:, counts])  # a count stays whole after bilinear weights
        for slot, k in zip(group, inverse.ravel().tolist()):
            block[slot.t - t0, features] = values[k]
            used[slot.t - t0] = (path, slot.scene.time)
    return used, problems


def resample_lat_lon(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, target_lat: np.ndarray,
                     target_lon: np.ndarray, method: str) -> np.ndarray:
    """(..., lat, lon) values on an ascending lat/lon grid -> the target lat/lon grid (float32, NaN invalid).

    The identical grid is returned as is. Longitudes are compared modulo 360; a global input wraps
    across its seam. NaN in any input cell that an output cell draws on makes that cell NaN.
    """
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    target_lat, target_lon = np.asarray(target_lat, np.float64), np.asarray(target_lon, np.float64)
    if lat.shape == target_lat.shape and lon.shape == target_lon.shape and np.allclose(lat, target_lat, atol=1e-6) \
            and np.allclose(np.mod(lon - target_lon + 180, 360) - 180, 0, atol=1e-6):
        return np.asarray(values, np.float32)
    margin = 0.5 if method == "nearest" else 0.0
    if covers_all_longitudes(lon):  # the first column again after the last: the seam is interpolated like any gap
        values = np.concatenate([values, values[..., :1]], axis=-1)
        lon = np.append(lon, lon[0] + 360.0)
        margin_lon = 0.0
    else:
        margin_lon = margin
    rows = _fractional_index(lat, target_lat, margin)
    cols = _fractional_index(lon, lon[0] + np.mod(target_lon - lon[0], 360.0), margin_lon)
    if method == "nearest":
        out = _take(values, np.rint(rows), np.rint(cols))
    else:
        out = _bilinear(values, rows, cols)
    return out.astype(np.float32, copy=False)


def _fractional_index(axis: np.ndarray, points: np.ndarray, margin: float) -> np.ndarray:
    """Fractional index of each point along an ascending axis; NaN beyond `margin` cells outside it."""
    n = axis.size
    if n == 1:
        return np.where(np.isclose(points, axis[0]), 0.0, np.nan)
    # A thousandth of a cell of slack: float32 coordinates put -5 at -4.9999924 (OSTIA).
    first = axis[0] - (margin + 1e-3) * (axis[1] - axis[0])
    last = axis[-1] + (margin + 1e-3) * (axis[-1] - axis[-2])
    index = np.interp(points, axis, np.arange(n, dtype=np.float64))
    return np.where((points >= first) & (points <= last), np.clip(index, 0, n - 1), np.nan)


def _take(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """values[..., rows, cols] on the outer product of the target axes; NaN where an index is NaN."""
    i = np.nan_to_num(rows).astype(np.intp)[:, None]
    j = np.nan_to_num(cols).astype(np.intp)[None, :]
    out = values[..., i, j]
    out[..., np.isnan(rows)[:, None] | np.isnan(cols)[None, :]] = np.nan
    return out


def _bilinear(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    n_rows, n_cols = values.shape[-2:]
    i0 = np.clip(np.floor(np.nan_to_num(rows)), 0, max(n_rows - 2, 0)).astype(np.intp)
    j0 = np.clip(np.floor(np.nan_to_num(cols)), 0, max(n_cols - 2, 0)).astype(np.intp)
    wi = np.clip(np.nan_to_num(rows) - i0, 0, 1).astype(np.float32)[:, None]
    wj = np.clip(np.nan_to_num(cols) - j0, 0, 1).astype(np.float32)[None, :]
    i1, j1 = np.minimum(i0 + 1, n_rows - 1), np.minimum(j0 + 1, n_cols - 1)
    corner = lambda i, j: values[..., i[:, None], j[None, :]]  # noqa: E731
    # NaN * 0 is NaN: an invalid corner invalidates the cell whatever its weight.
    out = ((1 - wi) * (1 - wj) * corner(i0, j0) + (1 - wi) * wj * corner(i0, j1)
           + wi * (1 - wj) * corner(i1, j0) + wi * wj * corner(i1, j1))
    out[..., np.isnan(rows)[:, None] | np.isnan(cols)[None, :]] = np.nan
    return out
