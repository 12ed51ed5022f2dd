"""The ingest's inputs as files, and the error an ingest that cannot start raises.

Standard library only: `satflow ingest` checks its inputs and counts them before it opens a cluster,
and it starts the cluster before importing the data libraries (`satflow.ingest.job`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence


class IngestError(ValueError):
    """The ingest cannot start (no inputs, nothing readable, store mismatch)."""


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
