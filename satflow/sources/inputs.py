"""What every source hands ingest: `FileInfo` (an input's metadata) and `SourceError` (a file that cannot be used).

Kept apart from `satflow.sources.base` so that wrappers of any source (`satflow.sources.windows`) use them
without importing the registry that dispatches to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class SourceError(Exception):
    """A file cannot be used: `path`, `reason` (what is wrong) and `hint` (what to do)."""

    def __init__(self, path, reason: str, hint: str = "fix or remove the file, or exclude it from the inputs"):
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"{self.path}: {reason}; {hint}")

    def __reduce__(self):  # keep all three fields when the error travels back from a Dask worker
        return type(self), (self.path, self.reason, self.hint)


@dataclass(frozen=True, eq=False)
class FileInfo:
    """Metadata of one input on the normalised grid (what `read_input` will return).

    `path` names the input in plans and provenance: a file, or for a group of files (a swath
    window) their paths joined by `INPUT_SEPARATOR`. `read_plan` is the source's own picklable
    recipe; `derived` are the trailing features computed from others (see satflow.sources.derived).
    """

    path: str
    times: np.ndarray  # datetime64[ns], or cftime dates where numpy cannot hold them (see timecodec)
    features: tuple[str, ...]
    lat: np.ndarray  # ascending, after crop
    lon: np.ndarray  # ascending in source.lon_convention (unwrapped past the seam by a crossing crop)
    units: tuple[str, ...] = ()  # per feature, after conversion ("" when the file declares none)
    notes: tuple[str, ...] = ()  # how the file was interpreted (time from name, calendar mapping, ...)
    read_plan: object = field(default=None, repr=False)
    derived: tuple[str, ...] = ()


INPUT_SEPARATOR = ";"
