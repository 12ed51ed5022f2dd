"""The task the executor maps while building an index: one time block's mask -> its index rows.

A task reads only the mask `M` of its time block, chunk by chunk and only the chunks that touch a
kept patch, counts the valid cells of every patch (`satflow.index.validity`), and keeps the rows
that pass the filters, with their split; the builder writes the frames in time order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from satflow.index.plan import CountJob, RowContext, TimeBlock
from satflow.index.splits import SPLITS
from satflow.index.validity import time_block_counts


def index_rows(block: TimeBlock, job: CountJob) -> pd.DataFrame:
    """The index rows of one time block (read from the store's mask)."""
    from satflow.store import open_group

    mask = open_group(job.store)["M"]  # opened per task: cheap, and safe on long-lived workers
    counts = time_block_counts(lambda region: mask[region], (block.t0, block.t1), job.feature_ranges,
                               job.spatial_chunks, job.n_features, job.grid)
    return rows_for_time_block(counts, block.t0, job.rows)


def rows_for_time_block(counts: np.ndarray, t_offset: int, ctx: RowContext) -> pd.DataFrame:
    """Index rows (filtered) from valid counts (time, feature, patch row, patch col)."""
    n_time, n_feature = counts.shape[:2]
    cells = ctx.height * ctx.width
    per_patch = counts.reshape(n_time, n_feature, -1)[:, :, ctx.patches.flat].astype(np.int64)
    total = per_patch.sum(axis=1)
    invalid = n_feature * cells - total
    feature_frac = per_patch / cells
    min_feature = feature_frac.min(axis=1)
    keep = invalid <= ctx.max_nodata_fraction * n_feature * cells + 1e-9
    keep &= min_feature >= ctx.min_feature_valid_fraction - 1e-12
    ti, pi = np.nonzero(keep)
    t = ti + t_offset
    columns = ctx.patches.columns
    split_codes = ctx.time_split[t] if ctx.time_split is not None else ctx.patches.split[pi]
    frame = {
        "patch_id": columns["patch_id"][pi], "t": t.astype(np.int32), "time": ctx.times[t],
        "y0": columns["y0"][pi].astype(np.int32), "x0": columns["x0"][pi].astype(np.int32),
        "height": np.full(t.size, ctx.height, np.int32), "width": np.full(t.size, ctx.width, np.int32),
        **{name: columns[name][pi] for name in ctx.patches.geometry},
        "valid_frac": total[ti, pi] / (n_feature * cells),
        "min_feature_valid_frac": min_feature[ti, pi],
    }
    if ctx.per_feature:
        for k, name in enumerate(ctx.features):
            frame[f"valid_frac_{name}"] = feature_frac[ti, k, pi]
    frame["window_id"] = columns["window_id"][pi]
    frame["split"] = np.asarray(SPLITS, dtype=object)[split_codes]
    return pd.DataFrame(frame)
