"""The source protocol, its registry, and the three calls ingest makes on any source.

A source turns inputs into float32 `(time, feature, lat, lon)` blocks on the target grid:
- `scan(path, source)`: metadata of one file (times, features, grid), cheap, no data; raises
  SourceError for a file that cannot be used (ingest skips it with the reason).
- `group(infos, source)`: per-file metadata -> inputs. A gridded file is one input; raw swath
  files are grouped into one input per time window. Returns (inputs, skipped files).
- `read(info, source, steps, out)`: the values of an input's time steps on its grid, with the
  mask carried as NaN (the store derives `M = isfinite(X)`, so mask and values never disagree).

Ingest calls `scan_input`, `group_inputs` and `read_input` below and never asks which source it
has: a new source is a module with a class and a `register_source` call, plus its entry in
`satflow.sources.kinds` (the reader's module and the kind's own options), so that configs
validate its kind and worker processes find it without importing every source up front. Derived
features (`source.derived`) are applied here, after any source has read its own features.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from satflow.sources.inputs import INPUT_SEPARATOR, FileInfo, SourceError
from satflow.sources.kinds import SOURCE_KINDS
from satflow.sources.options import SourceConfig
from satflow.sources.windows import group_windows, is_window, read_window

__all__ = ["INPUT_SEPARATOR", "FileInfo", "SourceError", "Source", "register_source", "get_source", "scan_input",
           "group_inputs", "read_input", "SingleFileGroups"]


class Source(Protocol):
    def scan(self, path: str, source: SourceConfig) -> FileInfo: ...

    def group(self, infos: list[FileInfo], source: SourceConfig) -> tuple[list[FileInfo], list[tuple[str, str]]]: ...

    def read(self, info: FileInfo, source: SourceConfig, steps: Sequence[int] | None = None,
             out: np.ndarray | None = None) -> np.ndarray: ...


_REGISTRY: dict[str, Source] = {}


def register_source(name: str, source: Source) -> None:
    _REGISTRY[name] = source


def get_source(name: str) -> Source:
    """The registered source `name`; a kind's reader module is imported on first use (also on workers)."""
    if name not in _REGISTRY and name in SOURCE_KINDS:
        importlib.import_module(SOURCE_KINDS[name].reader)
    if name not in _REGISTRY:
        raise ValueError(f"unknown source kind {name!r}; registered: {', '.join(sorted(_REGISTRY | SOURCE_KINDS))}")
    return _REGISTRY[name]


# --- what ingest calls -------------------------------------------------------------------------
def scan_input(path: str, source: SourceConfig) -> FileInfo:
    return get_source(source.kind).scan(path, source)


def group_inputs(infos: list[FileInfo], source: SourceConfig) -> tuple[list[FileInfo], list[tuple[str, str]]]:
    """Scanned files -> inputs (averaged in `source.time_window`s, see satflow.sources.windows) with the derived
    features appended; (path, reason) per file left out."""
    inputs, skipped = get_source(source.kind).group(infos, source)
    if source.time_window is not None:
        inputs, left_out = group_windows(inputs, source)
        skipped = skipped + left_out
    if not source.derived:
        return inputs, skipped
    from satflow.sources.derived import DerivedFeatureError, check_inputs

    kept = []
    for info in inputs:
        try:
            check_inputs(source.derived, info.features)
        except DerivedFeatureError as err:
            skipped.append((info.path, str(err)))
            continue
        kept.append(dataclasses.replace(info, features=info.features + tuple(source.derived),
                                        units=info.units + ("",) * len(source.derived) if info.units else (),
                                        derived=tuple(source.derived)))
    return kept, skipped


def read_input(info: FileInfo, source: SourceConfig, steps: Sequence[int] | None = None,
               out: np.ndarray | None = None, problems: list[tuple[str, str]] | None = None) -> np.ndarray:
    """The input's values (NaN where invalid), derived features included. Raises SourceError.

    A time-window input appends (path, reason) to `problems` for each member file it had to leave out.
    """
    reader = _reader(info, source, problems)
    if not info.derived:
        return reader.read(info, source, steps, out)
    from satflow.sources.derived import evaluate

    n_read = len(info.features) - len(info.derived)
    own = dataclasses.replace(info, features=info.features[:n_read], units=info.units[:n_read], derived=())
    if out is None:
        n_steps = len(info.times) if steps is None else len(steps)
        out = np.empty((n_steps, len(info.features), len(info.lat), len(info.lon)), np.float32)
    reader.read(own, source, steps, out[:, :n_read])
    index = {name: k for k, name in enumerate(own.features)}
    for k, name in enumerate(info.derived):
        out[:, n_read + k] = evaluate(source.derived[name], lambda feature: out[:, index[feature]])
    return out


@dataclass(frozen=True)
class _WindowReader:
    """`read` of a time-window input: the members through the kind's reader, then averaged."""

    member_reader: Source
    problems: list | None

    def read(self, info, source, steps=None, out=None):
        return read_window(info, source, steps, out, self.member_reader.read, self.problems)


def _reader(info: FileInfo, source: SourceConfig, problems: list | None):
    reader = get_source(source.kind)
    return _WindowReader(reader, problems) if is_window(info) else reader


class SingleFileGroups:
    """`group` for sources whose every file is one input."""

    def group(self, infos, source):
        return list(infos), []
