"""Deterministic sampling of index rows: random baselines and balanced draws per stratum.

A sample is "the n rows with the smallest keys", where a row's key hashes (seed, location, time).
The result depends only on the seed and on which rows exist: never on row order, partitioning or
worker count, and a larger n always extends a smaller one.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from satflow.index.io import METADATA_KEY, derived_metadata
from satflow.index.keys import frame_row_keys

log = logging.getLogger(__name__)


def _smallest_keys(frame: pd.DataFrame, n: int, seed: int, groups: list[str]) -> pd.DataFrame:
    keyed = frame.assign(_key=frame_row_keys(frame, seed))
    if groups:
        picked = keyed.sort_values("_key", kind="stable").groupby(groups, sort=True).head(n)
    else:
        picked = keyed.nsmallest(n, "_key")
    return frame.loc[np.sort(picked.index.to_numpy())]


def _with_history(result: pd.DataFrame, frame: pd.DataFrame, step: str, **parameters) -> pd.DataFrame:
    result = result.reset_index(drop=True)
    if METADATA_KEY in frame.attrs:
        result.attrs[METADATA_KEY] = derived_metadata(frame.attrs[METADATA_KEY], step, parameters)
    return result


def sample_random(frame: pd.DataFrame, n: int, seed: int = 0, per_split: bool = True) -> pd.DataFrame:
    """n uniformly random rows (per split unless `per_split` is False), reproducible from the seed."""
    if n <= 0:
        raise ValueError(f"sample size must be positive (got {n})")
    result = _smallest_keys(frame, n, seed, ["split"] if per_split else [])
    return _with_history(result, frame, "sample_random", n=n, seed=seed, per_split=per_split)


def sample_balanced(frame: pd.DataFrame, n_per_stratum: int, seed: int = 0, by: str = "stratum",
                    per_split: bool = True) -> pd.DataFrame:
    """Up to n rows of every stratum (per split), so rare strata weigh as much as common ones.

    Rows with a negative or missing stratum (for example: no label at that time) are left out.
    """
    if by not in frame.columns:
        raise ValueError(f"index has no column {by!r}; run `satflow index stratify` first")
    if n_per_stratum <= 0:
        raise ValueError(f"sample size must be positive (got {n_per_stratum})")
    labelled = frame[frame[by].notna() & (frame[by] >= 0)] if frame[by].dtype.kind in "if" else frame
    groups = ["split", by] if per_split else [by]
    result = _smallest_keys(labelled, n_per_stratum, seed, groups)
    short = result.groupby(groups).size()
    short = short[short < n_per_stratum]
    if len(short):
        log.warning("strata with fewer than %d rows (all taken): %s", n_per_stratum, short.to_dict())
    return _with_history(result, frame, "sample_balanced", n_per_stratum=n_per_stratum, seed=seed, by=by,
                         per_split=per_split)
