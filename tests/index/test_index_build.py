"""The index builder: exact valid fractions (chunk-straddling and wrapping patches), filters,
metadata, both Parquet readers, and the stale-store check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from satflow.index.build import build_index
from satflow.index.geometry import PatchGrid, cell_edges, lon_midpoint, patch_bounds
from satflow.index.io import StaleIndexError, read_index, read_metadata
from satflow.index.options import IndexConfig
from satflow.index.validity import chunk_ranges, time_block_counts, touching_chunks
from satflow.store import fingerprint

FEATURES = ["tmbrs-1", "tmbrs-2", "tmbrs-15"]


def brute_counts(valid: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Valid counts (time, feature, patch row, patch col) by explicit slicing."""
    padded = np.concatenate([valid, valid[..., : grid.width]], axis=-1) if grid.wrap else valid
    out = np.zeros((valid.shape[0], valid.shape[1], *grid.shape), dtype=np.int64)
    for i, y0 in enumerate(grid.origins_y):
        for j, x0 in enumerate(grid.origins_x):
            out[:, :, i, j] = padded[:, :, y0:y0 + grid.height, x0:x0 + grid.width].sum(axis=(-2, -1))
    return out


def brute_rows(values: np.ndarray, grid: PatchGrid) -> pd.DataFrame:
    counts = brute_counts(np.isfinite(values), grid)
    cells = grid.height * grid.width
    rows = []
    for t in range(values.shape[0]):
        for i, y0 in enumerate(grid.origins_y):
            for j, x0 in enumerate(grid.origins_x):
                c = counts[t, :, i, j]
                rows.append({"t": t, "y0": int(y0), "x0": int(x0), "valid_frac": c.sum() / (c.size * cells),
                             "min_feature_valid_frac": c.min() / cells,
                             **{f"valid_frac_{f}": c[k] / cells for k, f in enumerate(FEATURES)}})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("shape, chunks, patch, stride, wrap", [
    ((3, 2, 20, 30), (2, 1, 8, 16), 7, 3, True),
    ((3, 2, 20, 30), (1, 2, 8, 16), 7, 3, False),
    ((2, 3, 33, 40), (2, 2, 5, 7), 10, 4, True),
    ((2, 1, 16, 16), (1, 1, 16, 16), 16, 16, True),
    ((2, 1, 12, 12), (1, 1, 12, 5), 12, 1, True),  # patches as wide as the globe
])
def test_chunk_shares_add_up_to_brute_force(shape, chunks, patch, stride, wrap):
    mask = (np.random.default_rng(sum(shape)).random(shape) < 0.6).astype(np.uint8)
    grid = PatchGrid.square(shape[2], shape[3], patch, stride, wrap)
    spatial = touching_chunks(grid, np.ones(grid.shape, bool), chunk_ranges(shape[2], chunks[2]),
                              chunk_ranges(shape[3], chunks[3]))
    counts = np.concatenate([
        time_block_counts(lambda region: mask[region], times, chunk_ranges(shape[1], chunks[1]), spatial, shape[1], grid)
        for times in chunk_ranges(shape[0], chunks[0])], axis=0)
    np.testing.assert_array_equal(counts, brute_counts(mask, grid))


def _build(store, tmp_path, name="index.parquet", **overrides):
    config = IndexConfig.model_validate({"patch_size": 6, "stride": 4, "max_nodata_fraction": 1.0,
                                         "per_feature_columns": True, **overrides})
    out = tmp_path / name
    result = build_index(store, out, config)
    return result, read_index(out)


def test_global_index_is_exact_including_wrapping_patches(global_store, tmp_path):
    path, values = global_store.path, global_store.values
    result, frame = _build(path, tmp_path)
    grid = PatchGrid.square(12, 24, 6, 4, wrap=True)
    expected = brute_rows(values, grid)
    assert len(frame) == result.rows == 5 * 2 * 6
    assert frame["x0"].max() == 20  # x0 = 20 wraps: columns 20..23 and 0..1
    merged = frame.merge(expected, on=["t", "y0", "x0"], suffixes=("", "_ref"), validate="1:1")
    assert len(merged) == len(expected)
    for column in ["valid_frac", "min_feature_valid_frac", *[f"valid_frac_{f}" for f in FEATURES]]:
        np.testing.assert_array_equal(merged[column], merged[f"{column}_ref"])
    assert frame["patch_id"].iloc[0] == "p6x6-y0-x0"
    assert not frame.duplicated(["patch_id", "t"]).any()
    np.testing.assert_array_equal(frame["time"].to_numpy(), global_store.times[frame["t"].to_numpy()])


def test_regional_index_with_split_feature_chunks(regional_store, tmp_path):
    path, values = regional_store.path, regional_store.values
    _, frame = _build(path, tmp_path)
    expected = brute_rows(values, PatchGrid.square(10, 14, 6, 4, wrap=False))
    assert sorted(frame["x0"].unique()) == [0, 4, 8]  # no wrap: the last full patch starts at 8
    merged = frame.merge(expected, on=["t", "y0", "x0"], suffixes=("", "_ref"), validate="1:1")
    assert len(merged) == len(expected) == len(frame)
    np.testing.assert_array_equal(merged["min_feature_valid_frac"], merged["min_feature_valid_frac_ref"])
    row = frame[(frame.y0 == 4) & (frame.x0 == 8)].iloc[0]
    assert (row.lat0, row.lat1, row.lon0, row.lon1, row.lat_c, row.lon_c) == (14.0, 20.0, 108.0, 114.0, 17.0, 111.0)


def test_filters_keep_exactly_the_qualifying_rows(global_store, tmp_path):
    path, values = global_store.path, global_store.values
    expected = brute_rows(values, PatchGrid.square(12, 24, 6, 4, wrap=True))
    _, frame = _build(path, tmp_path, max_nodata_fraction=0.3, min_feature_valid_fraction=0.65,
                      time_start="2020-01-01T06:00", time_end="2020-01-01T18:00")
    keep = (1 - expected.valid_frac <= 0.3) & (expected.min_feature_valid_frac >= 0.65) & expected.t.between(1, 3)
    assert keep.sum() > 0 and (~keep).sum() > 0
    got = frame[["t", "y0", "x0"]].sort_values(["t", "y0", "x0"]).to_numpy()
    np.testing.assert_array_equal(got, expected.loc[keep, ["t", "y0", "x0"]].sort_values(["t", "y0", "x0"]).to_numpy())


def test_bbox_across_the_dateline_selects_by_centre(global_store, tmp_path):
    path = global_store.path
    _, frame = _build(path, tmp_path, bbox={"lat_min": -90, "lat_max": 90, "lon_min": 100, "lon_max": -130})
    # Centres are -135, -75, -15, 45, 105, 165 (x0 = 0, 4, .., 20); the box runs east from 100 to -130.
    assert sorted(frame["lon_c"].unique()) == [-135.0, 105.0, 165.0]


def test_cell_edges_are_midpoints_and_half_a_spacing_beyond_the_ends():
    np.testing.assert_array_equal(cell_edges(np.array([10.0])), [9.5, 10.5])
    np.testing.assert_array_equal(cell_edges(np.array([0.0, 2.0])), [-1.0, 1.0, 3.0])
    np.testing.assert_array_equal(cell_edges(np.array([0.0, 1.0, 3.0])), [-0.5, 0.5, 2.0, 4.0])


def test_dateline_bounds_and_centre():
    grid = PatchGrid.square(12, 24, 6, 4, wrap=True)
    lat, lon = np.linspace(-82.5, 82.5, 12), -172.5 + 15.0 * np.arange(24)
    bounds = patch_bounds(lat, lon, grid, np.array([0, 0]), np.array([21, 22]))
    np.testing.assert_array_equal(bounds.lon0, [135.0, 150.0])
    np.testing.assert_array_equal(bounds.lon1, [-135.0, -120.0])
    np.testing.assert_array_equal(bounds.lon_c, [-180.0, -165.0])
    np.testing.assert_array_equal(lon_midpoint([135.0, 150.0], [-135.0, -120.0]), [-180.0, -165.0])
    np.testing.assert_array_equal(bounds.lat0, [-90.0, -90.0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:.*fastparquet.*:Warning",
                            "ignore:.*infer_string.*:Warning")
def test_metadata_and_both_parquet_readers(global_store, tmp_path):
    path = global_store.path
    _, frame = _build(path, tmp_path, split={"seed": 3})
    out = tmp_path / "index.parquet"
    meta = read_metadata(out)
    assert meta["store"] == {"path": str(path.resolve()), "fingerprint": fingerprint(path),
                             "shape": [5, 3, 12, 24], "features": FEATURES}
    assert meta["grid"] == {"ny": 12, "nx": 24, "height": 6, "width": 6, "stride_y": 4, "stride_x": 4, "wrap": True}
    assert meta["parameters"]["split"]["seed"] == 3 and meta["satflow_version"]
    import fastparquet

    assert "satflow" in fastparquet.ParquetFile(out).key_value_metadata
    for engine in ("pyarrow", "fastparquet"):
        other = pd.read_parquet(out, engine=engine)
        assert list(other.columns) == list(frame.columns)
        assert other["patch_id"].astype(str).tolist() == frame["patch_id"].tolist()
        np.testing.assert_array_equal(other["valid_frac"], frame["valid_frac"])
        np.testing.assert_array_equal(other["time"].to_numpy(), frame["time"].to_numpy())


def test_rebuild_is_identical_and_client_gives_the_same_rows(global_store, tmp_path, dask_client):
    path = global_store.path
    _, first = _build(path, tmp_path, name="a.parquet")
    _, again = _build(path, tmp_path, name="b.parquet")
    config = IndexConfig(patch_size=6, stride=4, max_nodata_fraction=1.0, per_feature_columns=True)
    build_index(path, tmp_path / "c.parquet", config, client=dask_client)
    distributed = read_index(tmp_path / "c.parquet")
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, distributed)


def test_changed_store_is_an_error_that_says_what_to_do(global_store, tmp_path):
    store = global_store.copy_to(tmp_path / "copy.zarr")
    copy, out = store.path, tmp_path / "index.parquet"
    build_index(copy, out, IndexConfig(patch_size=6, stride=4))
    old = fingerprint(copy)
    changed = store.values.copy()
    changed[0, 0, 0, 0] = 123.0
    store.write(changed)
    with pytest.raises(StaleIndexError) as err:
        read_index(out)
    message = str(err.value)
    assert f"the store {copy.resolve()} changed since this index was built" in message
    assert f"fingerprint {old} at build time, {fingerprint(copy)} now" in message
    assert f"rebuild the index with `satflow index {copy.resolve()} --out {out}`" in message
    assert len(read_index(out, verify=False)) > 0  # still inspectable without the check


def test_patch_larger_than_grid_is_a_clear_error(global_store, tmp_path):
    path = global_store.path
    with pytest.raises(ValueError, match=r"patch 16x16 does not fit the 12x24 grid; lower index.patch_size"):
        build_index(path, tmp_path / "x.parquet", IndexConfig(patch_size=16, stride=16))
