"""The index actions behind `satflow index ...`: one function each, taking paths and options.

`build` and `stratify` read the store and may run on a cluster, opened by the policy of
`satflow.runtime.cluster` after the store (or index) was found; the other actions rewrite an index
file. Each returns a small result whose `describe()` is what the command prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from satflow.index.options import IndexConfig


@dataclass(frozen=True)
class DerivedIndex:
    """An index file written by a derived action, and the line the command prints about it."""

    out: Path
    summary: str

    def describe(self) -> str:
        return f"wrote {self.out}: {self.summary}"


def mask_chunks(store: str | Path) -> int:
    """How many chunks of M an index build reads; raises a clear StoreError for a missing or unfinished store."""
    from satflow.store import fingerprint, open_group

    fingerprint(store)  # a store never finalised cannot be indexed: say so before any cluster starts
    mask = open_group(store)["M"]
    return math.prod(math.ceil(n / c) for n, c in zip(mask.shape, mask.chunks))


def build_index_job(store: str | Path, out: str | Path, config: IndexConfig, cluster, *, choice: str = "auto"):
    """`satflow index build`: check the store, open a cluster by the policy (auto: by mask chunks), build."""
    from satflow.index.build import build_index
    from satflow.runtime.cluster import CLUSTER_FROM_LIGHT_TASKS, client_for

    n_chunks = mask_chunks(store)
    with client_for(choice, cluster, n_chunks, from_tasks=CLUSTER_FROM_LIGHT_TASKS) as client:
        return build_index(store, out, config, client=client)


def stratify_index(index: str | Path, out: str | Path, options, cluster, *, choice: str = "auto",
                   store: str | None = None, feature: str | None = None, statistic: str | None = None,
                   bins: int | None = None, labels: str | None = None, label_variable: str | None = None,
                   label_edges: list[float] | None = None) -> DerivedIndex:
    """`satflow index stratify`: strata from a per-patch feature statistic or a label mask.

    Arguments left None take their value from `options` (the `index.stratify` section).
    """
    from satflow.index.io import read_index, write_index
    from satflow.index.strata import stratify_by_feature, stratify_by_labels
    from satflow.runtime.cluster import CLUSTER_FROM_LIGHT_TASKS, client_for

    frame = read_index(index, store=store)
    store_path = frame.attrs["satflow"]["store"]["path"]
    labels = labels or options.labels
    feature = feature or options.feature
    bins = bins or options.bins
    if labels:
        result = stratify_by_labels(frame, labels, label_variable or options.label_variable,
                                    label_edges or options.label_edges, bins, options.time_tolerance, store=store_path)
    elif feature:
        with client_for(choice, cluster, int(frame["t"].nunique()), from_tasks=CLUSTER_FROM_LIGHT_TASKS) as client:
            result = stratify_by_feature(frame, feature, statistic or options.statistic, bins,
                                         store=store_path, client=client)
    else:
        raise ValueError("stratify needs --feature (a per-patch statistic) or --labels (a label mask)")
    write_index(result, out, result.attrs["satflow"])
    counts = result["stratum"].value_counts().sort_index()
    return DerivedIndex(Path(out), "rows per stratum " + ", ".join(f"{k}: {v}" for k, v in counts.items()))


def sample_index(index: str | Path, out: str | Path, n: int, *, seed: int = 0, balanced: bool = False,
                 by: str = "stratum", per_split: bool = True) -> DerivedIndex:
    """`satflow index sample`: N rows per split (or per stratum and split when `balanced`), seeded."""
    from satflow.index.io import read_index, write_index
    from satflow.index.sampling import sample_balanced, sample_random

    frame = read_index(index, verify=False)
    if balanced:
        result = sample_balanced(frame, n, seed, by, per_split=per_split)
    else:
        result = sample_random(frame, n, seed, per_split=per_split)
    write_index(result, out, result.attrs["satflow"])
    per_split_rows = ", ".join(f"{name} {count}" for name, count in result["split"].value_counts().items())
    return DerivedIndex(Path(out), f"{len(result)} rows ({per_split_rows})")


def triplets_index(index: str | Path, out: str | Path, *, distance: int, n_per_split: int | None,
                   seed: int) -> DerivedIndex:
    """`satflow index triplets`: Tile2Vec anchor, neighbour and distant columns."""
    from satflow.index.io import read_index, write_index
    from satflow.index.triplets import add_triplets

    frame = read_index(index, verify=False)
    result = add_triplets(frame, distance=distance, n_per_split=n_per_split, seed=seed)
    write_index(result, out, result.attrs["satflow"])
    return DerivedIndex(Path(out), f"{len(result)} triplets")


def windows_index(index: str | Path, out: str | Path, options) -> DerivedIndex:
    """`satflow index windows`: sequences of `options.length` steps per location (`index.windows` section)."""
    from satflow.index.io import read_index, write_index
    from satflow.index.windows import time_windows

    frame = read_index(index, verify=False)
    result = time_windows(frame, options.length, options.span, options.step, options.min_valid_frac)
    write_index(result, out, result.attrs["satflow"])
    return DerivedIndex(Path(out), f"{result['sequence_id'].nunique()} sequences of {options.length} steps")


def export_index(index: str | Path, out: str | Path, fmt: str, *, split: str | None = None, limit: int | None = None,
                 features: list[str] | None = None, store: str | None = None,
                 groups: dict[str, list[str]] | None = None) -> str:
    """`satflow index export`: one file per row (of `split`, at most `limit`); returns the line to print."""
    from satflow.index.export import export_patches
    from satflow.index.io import read_index

    frame = read_index(index, store=store)
    if split:
        frame = frame[frame["split"] == split]
    manifest = export_patches(frame.attrs["satflow"]["store"]["path"], frame, out, fmt,
                              features=features, limit=limit, groups=groups)
    return f"wrote {min(len(frame), limit or len(frame))} {fmt} file(s) and {manifest}"
