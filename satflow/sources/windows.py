"""Time windows on any source: each store step is the mean over finite values of the inputs in its window.

`source.time_window` (an ISO 8601 duration: `PT6H`, `P1D`, `P7D`, or calendar months `P1M`, `P3M`,
`P1Y`) with `source.time_window_anchor`:
- `calendar`: windows `[start, start + duration)` aligned to 1970-01-01 00:00 (months: to calendar
  months, so `P3M` are the quarters Jan-Mar, Apr-Jun, ...), labelled by their start;
- `centred`: `[centre - duration/2, centre + duration/2)` around each of `time_window_centres`
  (an auxiliary product without centres: around the primary store's times), labelled by the centre.
  Centred windows may overlap; an input step then counts in each of them.

`group_windows` runs after the kind's own grouping (a swath window or a profile month is one input
step like a gridded file's step): the inputs whose steps fall in the same windows become one
composite input, a `FileInfo` whose `times` are the window labels, whose `path` lists the member
files (the store's provenance) and whose `read_plan` is a `WindowPlan` naming, per window, the
member inputs and their steps. Ingest plans, resumes and writes it like any input.

`read_window` reads each member once (through the kind's reader) and averages per cell and
feature over the member steps with a finite value (sum and count, vectorised), so a real 0 stays a
value. The feature `window-count` (one per store step, after the kind's features) counts the member
steps with at least one finite feature in the cell, NaN where none (one count, not one per feature:
in gridded products, scenes and swaths the gaps are shared by all features, so per-feature counts
would repeat it at the cost of doubling the store; where they are not, as for profiles on depth
levels, the kind's own count feature, e.g. `thetao-count`, is averaged like any feature). A
kind's per-step count features (`channels-k`, `<name>-count`) are averaged like any other feature:
the mean count per contributing step. A member that fails to read is
reported (`problems`) and left out: the window averages the others; only a window whose every
member fails is an error of the whole input.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from satflow.sources.inputs import INPUT_SEPARATOR, FileInfo, SourceError
from satflow.sources.options import SourceConfig, WindowLength, window_length
from satflow.sources.timecodec import (TimeDecodeError, as_time_array, decode_times, encode_times,
                                       iso_times, parse_time_like, time_calendar)

WINDOW_COUNT = "window-count"
_HOURS_UNITS = "hours since 1970-01-01 00:00:00"
_EPSILON_HOURS = 1e-6


class WindowWarning(UserWarning):
    """A window member could not be read and was left out (when no `problems` list collects it)."""


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """The recipe of a composite input: its member inputs and, per window, (member index, member steps)."""

    members: tuple[FileInfo, ...]
    windows: tuple[tuple[tuple[int, tuple[int, ...]], ...], ...]


def is_window(info: FileInfo) -> bool:
    return isinstance(info.read_plan, WindowPlan)


# --- grouping (no data read) ----------------------------------------------------------------------
def group_windows(inputs: list[FileInfo], source: SourceConfig) -> tuple[list[FileInfo], list[tuple[str, str]]]:
    """The kind's inputs -> one composite input per set of member files (see module docstring).

    Inputs unlike the majority (features, grid, calendar) are left out with the reason.
    """
    if source.time_window is None or not inputs:
        return inputs, []
    members, skipped = _compatible(inputs)
    length = window_length(source.time_window)
    calendar = time_calendar(members[0].times)
    windows: dict[float, list[tuple[int, int]]] = collections.defaultdict(list)  # label hours -> (member, step)
    labels_of = _calendar_labels if source.window_anchor == "calendar" else _centred_labels(source,
                                                                                                 members[0].times)
    for m, info in enumerate(members):
        for step, labels in enumerate(labels_of(info.times, length)):
            for label in labels:
                windows[label].append((m, step))
    return _composites(members, windows, calendar), skipped


def _compatible(inputs: list[FileInfo]) -> tuple[list[FileInfo], list[tuple[str, str]]]:
    key = lambda i: (i.features, i.units, i.lat.tobytes(), i.lon.tobytes(), time_calendar(i.times))  # noqa: E731
    common = collections.Counter(key(i) for i in inputs).most_common(1)[0][0]
    kept = [i for i in inputs if key(i) == common]
    skipped = [(i.path, "features, grid or calendar differ from the other inputs averaged in time windows "
                f"({len(i.features)} features, {i.lat.size}x{i.lon.size} cells); select common variables with --var "
                "or ingest it separately") for i in inputs if key(i) != common]
    return kept, skipped


def _hours(times: np.ndarray) -> np.ndarray:
    calendar = time_calendar(times)
    return np.asarray(encode_times(times, _HOURS_UNITS, "proleptic_gregorian" if calendar == "datetime64"
                                   else calendar), np.float64)


def _calendar_labels(times: np.ndarray, length: WindowLength) -> list[tuple[float, ...]]:
    """Per time, the one window start (as hours since 1970 in the times' calendar) it falls in."""
    times = np.asarray(times)
    if not times.size:
        return []
    if length.months:
        if times.dtype.kind == "M":
            months = times.astype("datetime64[M]").astype(np.int64)
        else:
            months = np.array([(t.year - 1970) * 12 + t.month - 1 for t in times], np.int64)
        starts = np.floor_divide(months, length.months) * length.months
        return [(h,) for h in _month_start_hours(starts, times).tolist()]
    starts = np.floor(_hours(times) / length.hours + _EPSILON_HOURS) * length.hours
    return [(h,) for h in starts.tolist()]


def _month_start_hours(months: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Months since 1970-01 -> the hours of their first instant in the calendar of `like`."""
    calendar = time_calendar(like)
    if calendar == "datetime64":
        return _hours(months.astype("datetime64[M]").astype("datetime64[ns]"))
    years, month = np.divmod(months, 12)
    starts = as_time_array([type(like.flat[0])(1970 + int(y), int(m) + 1, 1, calendar=calendar)
                            for y, m in zip(years, month)])
    return _hours(starts)


def _centred_labels(source: SourceConfig, like: np.ndarray):
    """A function: per time, the centres (hours) whose window [c - d/2, c + d/2) holds it."""
    if not source.time_window_centres:
        raise ValueError("source.time_window_anchor centred needs source.time_window_centres (ISO times); only an "
                         "auxiliary product's windows default to the primary store's times")
    try:
        centres = as_time_array([parse_time_like(text, like) for text in source.time_window_centres])
    except (TimeDecodeError, ValueError) as err:
        raise ValueError(f"source.time_window_centres: {err}") from None
    centre_hours = np.unique(_hours(as_time_array(centres)))

    def labels(times: np.ndarray, length: WindowLength) -> list[tuple[float, ...]]:
        hours = _hours(times)[:, None] if len(times) else np.zeros((0, 1))
        half = length.hours / 2
        inside = (hours >= centre_hours - half - _EPSILON_HOURS) & (hours < centre_hours + half - _EPSILON_HOURS)
        return [tuple(centre_hours[row].tolist()) for row in inside]

    return labels


def _composites(members: list[FileInfo], windows: dict[float, list[tuple[int, int]]], calendar: str
                ) -> list[FileInfo]:
    """Windows with the same member files share one composite input (its path names those files)."""
    by_files: dict[str, list[float]] = collections.defaultdict(list)
    for label, entries in windows.items():
        by_files[_files_path(members[m] for m in dict.fromkeys(m for m, _ in entries))].append(label)
    composites = []
    for path, labels in by_files.items():
        labels = sorted(labels)
        used = sorted({m for label in labels for m, _ in windows[label]})
        position = {m: k for k, m in enumerate(used)}
        plan = WindowPlan(tuple(members[m] for m in used), tuple(_member_steps(windows[label], position)
                                                                   for label in labels))
        first = members[used[0]]
        composites.append(dataclasses.replace(
            first, path=path, times=_label_times(np.asarray(labels), calendar), read_plan=plan,
            features=first.features + (WINDOW_COUNT,), units=first.units + ("1",) if first.units else (),
            notes=first.notes + (f"mean over {len(used)} input(s) in time windows",)))
    return sorted(composites, key=lambda c: _hours(c.times)[0])


def _files_path(infos) -> str:
    files = (f for info in infos for f in info.path.split(INPUT_SEPARATOR))
    return INPUT_SEPARATOR.join(dict.fromkeys(files))


def _member_steps(entries: list[tuple[int, int]], position: dict[int, int]) -> tuple[tuple[int, tuple[int, ...]], ...]:
    steps: dict[int, list[int]] = collections.defaultdict(list)
    for m, step in entries:
        steps[position[m]].append(step)
    return tuple((k, tuple(sorted(s))) for k, s in sorted(steps.items()))


def _label_times(hours: np.ndarray, calendar: str) -> np.ndarray:
    return decode_times(hours, _HOURS_UNITS, "proleptic_gregorian" if calendar == "datetime64" else calendar)


# --- reading -------------------------------------------------------------------------------------
Reader = Callable[[FileInfo, SourceConfig, Sequence[int] | None, np.ndarray | None], np.ndarray]


def read_window(info: FileInfo, source: SourceConfig, steps: Sequence[int] | None, out: np.ndarray | None,
                read_member: Reader, problems: list[tuple[str, str]] | None = None) -> np.ndarray:
    """The window means of `info`'s windows `steps` (all by default) and their `window-count`.

    A member that raises SourceError is appended to `problems` as (path, reason) (a WindowWarning
    without a list) and left out; a window none of whose members could be read raises SourceError.
    """
    plan: WindowPlan = info.read_plan
    wanted = list(range(len(plan.windows))) if steps is None else [int(s) for s in steps]
    n_own = len(plan.members[0].features)
    if out is None:
        out = np.empty((len(wanted), n_own + 1, len(info.lat), len(info.lon)), np.float32)
    shape = (len(wanted), n_own, len(info.lat), len(info.lon))
    total, count = np.zeros(shape, np.float64), np.zeros(shape, np.int32)
    contributing = np.zeros((len(wanted), len(info.lat), len(info.lon)), np.int32)
    uses = _uses_per_member(plan, wanted)
    failed = {}
    for m, (member_steps, targets) in uses.items():
        member = plan.members[m]
        try:
            values = read_member(member, source, member_steps, None)
        except SourceError as err:
            failed[m] = err.reason
            _report(problems, member.path, err.reason)
            continue
        finite = np.isfinite(values)
        for row, k in targets:  # per (member step, window): whole-field adds, no loop over cells
            total[k] += np.where(finite[row], values[row], 0.0)
            count[k] += finite[row]
            contributing[k] += finite[row].any(axis=0)
    for k, w in enumerate(wanted):
        members = {m for m, _ in plan.windows[w]}
        if members <= set(failed):
            reasons = "; ".join(f"{plan.members[m].path}: {failed[m]}" for m in sorted(members))
            raise SourceError(info.path, f"no member of the time window at {info.times[w]} could be read ({reasons})")
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, :n_own] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    out[:, n_own] = np.where(contributing > 0, contributing, np.nan)
    return out


def _uses_per_member(plan: WindowPlan, wanted: list[int]) -> dict[int, tuple[list[int], list[tuple[int, int]]]]:
    """Per member: the steps to read (once each) and (row in that read, window position) pairs."""
    needed: dict[int, set[int]] = collections.defaultdict(set)
    for w in wanted:
        for m, member_steps in plan.windows[w]:
            needed[m].update(member_steps)
    uses = {}
    for m, member_steps in needed.items():
        ordered = sorted(member_steps)
        row = {s: r for r, s in enumerate(ordered)}
        targets = [(row[s], k) for k, w in enumerate(wanted) for mm, steps in plan.windows[w] if mm == m
                   for s in steps]
        uses[m] = (ordered, targets)
    return uses


def _report(problems: list[tuple[str, str]] | None, path: str, reason: str) -> None:
    if problems is None:
        warnings.warn(f"{path}: {reason}; left out of its time window", WindowWarning, stacklevel=3)
    else:
        problems.append((path, reason))


def with_primary_centres(source: SourceConfig, primary: Sequence[FileInfo]) -> SourceConfig:
    """An auxiliary product's source centred on the primary inputs' times when it names no centres itself."""
    if source.time_window is None or source.window_anchor != "centred" or source.time_window_centres:
        return source
    times = sorted({t for info in primary for t in info.times})
    return source.model_copy(update={"time_window_centres": iso_times(as_time_array(times))}) if times else source
