"""The index plan is plain data over hand-built store facts: no store, no file, no cluster."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from satflow.index.options import IndexConfig
from satflow.index.plan import IndexFacts, TimeBlock, plan_index


def _facts(**overrides) -> IndexFacts:
    """A global 7 x 3 x 30 x 48 store (7.5 degree cells), chunks 3 x 2 x 7 x 10, six-hourly steps."""
    facts = dict(store="/nonexistent/store.zarr", fingerprint="f00d", shape=(7, 3, 30, 48), chunks=(3, 2, 7, 10),
                 features=("a", "b", "c"),
                 times=np.datetime64("2021-01-01", "ns") + np.arange(7) * np.timedelta64(6, "h"),
                 lat=np.linspace(-88.125, 88.125, 30), lon=-176.25 + 7.5 * np.arange(48))
    return IndexFacts(**{**facts, **overrides})


def test_time_blocks_are_the_mask_time_chunks_and_only_touched_chunks_are_read():
    plan = plan_index(_facts(), IndexConfig(patch_size=8, stride=8))
    assert plan.grid.shape == (3, 6) and plan.grid.wrap and plan.locations == 18
    assert plan.time_range == (0, 7)
    assert plan.blocks == [TimeBlock(0, 3), TimeBlock(3, 6), TimeBlock(6, 7)]
    assert plan.job.feature_ranges == [(0, 2), (2, 3)] and plan.job.n_features == 3
    # Patches cover rows 0..23: the last row of chunks (28..30) is never read.
    assert len(plan.job.spatial_chunks) == 4 * 5 and all(y1 <= 28 for _, y1, _, _ in plan.job.spatial_chunks)


def test_a_time_range_and_a_dateline_box_cut_blocks_patches_and_chunks():
    config = IndexConfig(patch_size=8, stride=8, time_start="2021-01-01T05:00", time_end="2021-01-02T06:00",
                         bbox={"lat_min": -30, "lat_max": 40, "lon_min": 150, "lon_max": -150})
    plan = plan_index(_facts(), config)
    assert plan.time_range == (1, 6) and plan.blocks == [TimeBlock(1, 3), TimeBlock(3, 6)]
    assert plan.job.rows.patches.columns["patch_id"].tolist() == ["p8x8-y8-x0", "p8x8-y8-x40", "p8x8-y16-x0",
                                                                   "p8x8-y16-x40"]
    assert plan.job.spatial_chunks == [(7, 14, 0, 10), (7, 14, 40, 48), (14, 21, 0, 10), (14, 21, 40, 48),
                                       (21, 28, 0, 10), (21, 28, 40, 48)]


def test_rows_know_every_step_time_and_the_filters():
    config = IndexConfig(patch_size=5, stride=3, max_nodata_fraction=0.25, min_feature_valid_fraction=0.5,
                         per_feature_columns=True, split={"mode": "time", "time_block": 2})
    rows = plan_index(_facts(), config).job.rows
    assert rows.times[1] == np.datetime64("2021-01-01T06:00", "ns") and len(rows.time_split) == 7
    assert (rows.height, rows.width, rows.max_nodata_fraction, rows.min_feature_valid_fraction) == (5, 5, 0.25, 0.5)
    assert rows.per_feature and rows.features == ("a", "b", "c") and len(rows.patches) == 9 * 16


@pytest.mark.parametrize("config, message", [
    (dict(bbox={"lat_min": 89, "lat_max": 90}), r"index.bbox .* contains no patch centre of the store /nonexistent"),
    (dict(time_start="2022-01-01"), r"index.time_start/time_end \(2022-01-01 .. None\) select no time step"),
])
def test_plans_refuse_selections_that_keep_nothing(config, message):
    with pytest.raises(ValueError, match=message):
        plan_index(_facts(), IndexConfig(patch_size=8, stride=8, **config))


def test_planning_an_index_touches_no_file_and_imports_no_store_or_cluster_library():
    script = textwrap.dedent('''
        import sys
        import numpy as np
        from satflow.index.options import IndexConfig
        from satflow.index.plan import IndexFacts, plan_index

        facts = IndexFacts("/nonexistent/store.zarr", "f00d", (4, 1, 16, 32), (1, 1, 8, 8), ("a",),
                           np.datetime64("2021-01-01", "ns") + np.arange(4) * np.timedelta64(1, "D"),
                           np.linspace(-60, 60, 16), np.linspace(-170, 170, 32))
        plan = plan_index(facts, IndexConfig(patch_size=8, stride=8))
        print(len(plan.blocks), plan.locations)
        print(sorted(m for m in ("zarr", "xarray", "dask", "distributed", "torch") if m in sys.modules))
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["4 8", "[]"]
