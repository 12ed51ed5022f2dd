"""PatchDataset: exact normalisation and filling, aligned augmentation and corruption, lazy
per-worker store access (DataLoader with 2 workers), and reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from satflow.dataset import PatchDataset, SequenceDataset, TripletDataset
from satflow.index.build import build_index
from satflow.index.io import StaleIndexError, read_index
from satflow.index.options import IndexConfig, SplitConfig
from satflow.index.triplets import add_triplets
from satflow.index.windows import time_windows
from satflow.store import open_store, write_store_from_arrays

FEATURES = ["tmbrs-1", "tmbrs-2", "tmbrs-15"]
TIMES = np.datetime64("2020-01-01T00:00", "ns") + np.arange(4) * np.timedelta64(6, "h")
LAT, LON = np.linspace(-75.0, 75.0, 16), -174.375 + 11.25 * np.arange(32)  # global: patches wrap


def _write(path, values):
    write_store_from_arrays(path, values, times=TIMES, features=FEATURES, lat=LAT, lon=LON,
                            chunks={"time": 1, "feature": -1, "lat": 8, "lon": 8})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(3)
    values = (rng.normal(0, 5, (4, 3, 16, 32)) + np.array([250, 270, 210])[None, :, None, None]).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    root = tmp_path_factory.mktemp("dataset")
    path = root / "store.zarr"
    _write(path, values)
    index = root / "index.parquet"
    build_index(path, index, IndexConfig(patch_size=8, stride=4, max_nodata_fraction=1.0,
                                         split=SplitConfig(train=1.0, val=0.0, test=0.0)))
    return path, index, values


def _patch(values, row):
    cols = np.arange(row.x0, row.x0 + row.width) % values.shape[-1]
    return values[row.t, :, row.y0:row.y0 + row.height][:, :, cols]


def test_items_are_z_scored_with_store_statistics_and_filled(store):
    path, index, values = store
    ds = PatchDataset(path, index, split="train", fill_value=-9.0)
    stats = open_store(path)
    mean, std = stats["mean"].values.astype(np.float32), stats["std"].values.astype(np.float32)
    np.testing.assert_allclose(mean, np.nanmean(values, axis=(0, 2, 3)), rtol=1e-6)
    wrapped = int(np.flatnonzero(ds.frame["x0"].to_numpy() == 28)[0])  # columns 28..31 and 0..3
    for i in (0, 5, wrapped):
        item, row = ds[i], ds.frame.iloc[i]
        raw = _patch(values, row)
        expected = np.where(np.isfinite(raw), (raw - mean[:, None, None]) / std[:, None, None], -9.0)
        assert item["x"].dtype == torch.float32 and item["x"].shape == (3, 8, 8)
        np.testing.assert_array_equal(item["x"].numpy(), expected.astype(np.float32))
        np.testing.assert_array_equal(item["mask"].numpy(), np.isfinite(raw))
        assert item["patch_id"] == row.patch_id and item["t"] == row.t
        assert item["time"] == TIMES[row.t].astype(np.int64)
        np.testing.assert_array_equal(item["lon"].numpy(), LON[np.arange(row.x0, row.x0 + 8) % 32])
        np.testing.assert_array_equal(item["lat"].numpy(), LAT[row.y0:row.y0 + 8])
    restored = ds.denormalize(ds[0]["x"])
    raw = _patch(values, ds.frame.iloc[0])
    np.testing.assert_allclose(restored.numpy()[np.isfinite(raw)], raw[np.isfinite(raw)], rtol=1e-6)


def test_feature_selection_keeps_the_requested_order(store):
    path, index, values = store
    ds = PatchDataset(path, index, features=["tmbrs-15", "tmbrs-1"], normalize=False, fill_value=np.nan)
    raw = _patch(values, ds.frame.iloc[3])[[2, 0]]
    np.testing.assert_array_equal(ds[3]["x"].numpy(), raw)


def _dihedral(array):
    for turns in range(4):
        rotated = np.rot90(array, turns, axes=(-2, -1))
        yield rotated
        yield rotated[..., ::-1]


def test_augmentation_and_corruption_keep_data_and_masks_aligned(store):
    path, index, _ = store
    plain = PatchDataset(path, index)
    augmented = PatchDataset(path, index, augment=True, corruption="tracks", hidden_fraction=0.6, seed=4)
    used = set()
    for i in range(12):
        base, item = plain[i], augmented[i]
        x, mask = base["x"].numpy(), base["mask"].numpy()
        matches = [k for k, (tx, tm) in enumerate(zip(_dihedral(x), _dihedral(mask)))
                   if np.array_equal(tx, item["x"].numpy()) and np.array_equal(tm, item["mask"].numpy())]
        assert matches, f"item {i}: x and mask were not transformed together"
        used.add(matches[0])
        corrupt, kept = item["x_corrupt"].numpy(), item["mask_corrupt"].numpy()
        assert not (kept & ~item["mask"].numpy()).any()
        np.testing.assert_array_equal(corrupt, np.where(kept, item["x"].numpy(), 0.0))
        observed = kept.any(axis=0) | ~item["mask"].numpy().any(axis=0)
        assert observed.sum() <= round(0.4 * 64) + (~item["mask"].numpy().any(axis=0)).sum()
    assert len(used) > 2  # several different rotations/flips were drawn


def test_dataloader_with_two_workers_gives_identical_batches(store):
    path, index, _ = store
    ds = PatchDataset(path, index, augment=True, corruption="rectangles", hidden_fraction=0.3, seed=1)
    serial = list(DataLoader(ds, batch_size=8, num_workers=0))
    parallel = list(DataLoader(ds, batch_size=8, num_workers=2))
    assert len(serial) == len(parallel) == -(-len(ds) // 8)
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys()
        for key in ("x", "mask", "x_corrupt", "mask_corrupt", "lat", "lon", "time"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        assert a["patch_id"] == b["patch_id"]


def test_epochs_and_seeds_change_draws_reproducibly(store):
    path, index, _ = store
    ds = PatchDataset(path, index, corruption="tracks", seed=2)
    first = ds[1]["mask_corrupt"].clone()
    assert torch.equal(first, PatchDataset(path, index, corruption="tracks", seed=2)[1]["mask_corrupt"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[1]["mask_corrupt"])


def test_fixed_eval_sample_is_reproducible(store):
    path, index, _ = store
    ds = PatchDataset(path, index)
    sample = ds.fixed_eval_sample(10, seed=0)
    assert len(sample) == 10 and sample.indices == sorted(sample.indices)
    assert sample.indices == PatchDataset(path, index).fixed_eval_sample(10, seed=0).indices
    assert sample.indices != ds.fixed_eval_sample(10, seed=1).indices
    assert ds.fixed_eval_sample(5, seed=0).indices == [i for i in sample.indices
                                                       if i in ds.fixed_eval_sample(5, seed=0).indices]


def test_changed_store_stops_the_dataset(store, tmp_path):
    import shutil

    path, index, values = store
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    rebuilt = tmp_path / "index.parquet"
    build_index(copy, rebuilt, IndexConfig(patch_size=8, stride=8))
    _write(copy, values[::-1].copy())
    with pytest.raises(StaleIndexError, match="changed since this index was built"):
        PatchDataset(copy, rebuilt)


def test_unknown_split_or_corruption_is_explained(store):
    path, index, _ = store
    with pytest.raises(ValueError, match="index has no rows for split 'val'"):
        PatchDataset(path, index, split="val")
    with pytest.raises(ValueError, match="unknown corruption 'holes'; choose one of tracks, rectangles"):
        PatchDataset(path, index, corruption="holes")


def test_triplet_and_sequence_datasets(store):
    path, index, _ = store
    frame = read_index(index)
    triplets = add_triplets(frame, distance=1, seed=0)
    ds = TripletDataset(path, triplets)
    item = ds[0]
    row = triplets.iloc[0]
    anchor = PatchDataset(path, frame)
    position = int(np.flatnonzero((frame.t == row.t) & (frame.y0 == row.y0) & (frame.x0 == row.x0))[0])
    assert torch.equal(item["anchor_x"], anchor[position]["x"])
    assert item["neighbor_x"].shape == item["distant_x"].shape == (3, 8, 8)
    sequences = SequenceDataset(path, time_windows(frame, length=3))
    batch = sequences[0]
    assert batch["x"].shape == (3, 3, 8, 8) and batch["t"].tolist() == [0, 1, 2]


def _store_slice(path, t: int, y0: int, x0: int, size: int) -> np.ndarray:
    """X[t, :, y0:y0+size, x0:x0+size] read with xarray, longitudes wrapping past the last column."""
    import xarray as xr

    X = xr.open_zarr(path)["X"]
    cols = np.arange(x0, x0 + size) % X.sizes["lon"]
    return X.isel(time=int(t), lat=slice(int(y0), int(y0) + size), lon=cols).values


def test_every_triplet_role_is_the_store_slice_its_columns_name(store):
    path, index, _ = store
    triplets = add_triplets(read_index(index), distance=1, seed=0)
    stats = open_store(path)
    mean = stats["mean"].values.astype(np.float32)[:, None, None]
    std = stats["std"].values.astype(np.float32)[:, None, None]
    raw = TripletDataset(path, triplets, normalize=False, fill_value=np.nan)
    normalized = TripletDataset(path, triplets, fill_value=-9.0)
    # Neighbours differ from their anchor in place, distant patches in time: reading the anchor's
    # position for every role would not match below.
    assert ((triplets.neighbor_y0 != triplets.y0) | (triplets.neighbor_x0 != triplets.x0)).all()
    assert (triplets.distant_t != triplets.t).all()
    wrapped = np.flatnonzero((triplets.neighbor_x0 == 28) | (triplets.distant_x0 == 28))[:2].tolist()
    for i in [0, 1, len(triplets) // 2, len(triplets) - 1, *wrapped]:
        row, item, item_n = triplets.iloc[i], raw[i], normalized[i]
        for role in ("anchor", "neighbor", "distant"):
            prefix = "" if role == "anchor" else f"{role}_"
            expected = _store_slice(path, row[f"{prefix}t"], row[f"{prefix}y0"], row[f"{prefix}x0"], 8)
            np.testing.assert_array_equal(item[f"{role}_x"].numpy(), expected, err_msg=f"{role} of row {i}")
            np.testing.assert_array_equal(item[f"{role}_mask"].numpy(), np.isfinite(expected))
            z = np.where(np.isfinite(expected), (expected - mean) / std, np.float32(-9.0)).astype(np.float32)
            np.testing.assert_array_equal(item_n[f"{role}_x"].numpy(), z, err_msg=f"{role} of row {i}")


def test_every_sequence_step_is_the_store_slice_its_row_names(store):
    path, index, _ = store
    windows = time_windows(read_index(index), length=3)
    ds = SequenceDataset(path, windows, normalize=False, fill_value=np.nan)
    assert len(ds) == windows["sequence_id"].nunique() > 0
    for i in range(len(ds)):
        item = ds[i]
        members = windows[windows.sequence_id == item["sequence_id"]].sort_values("sequence_pos")
        assert item["t"].tolist() == members["t"].tolist() and len(members) == 3
        expected = np.stack([_store_slice(path, r.t, r.y0, r.x0, 8) for r in members.itertuples()])
        np.testing.assert_array_equal(item["x"].numpy(), expected, err_msg=item["sequence_id"])
        np.testing.assert_array_equal(item["mask"].numpy(), np.isfinite(expected))


def test_groups_split_features_by_pattern_with_their_masks_and_augment_together(store):
    path, index, values = store
    ds = PatchDataset(path, index, groups={"low": ["tmbrs-?"], "high": ["tmbrs-15"]}, land_mask="tmbrs-2",
                      normalize=False, fill_value=np.nan)
    assert ds.groups == {"low": ["tmbrs-1", "tmbrs-2"], "high": ["tmbrs-15"]}
    wrapped = int(np.flatnonzero(ds.frame["x0"].to_numpy() == 28)[0])
    item, raw = ds[wrapped], _patch(values, ds.frame.iloc[wrapped])
    np.testing.assert_array_equal(item["low"].numpy(), raw[:2])
    np.testing.assert_array_equal(item["high_valid_mask"].numpy(), np.isfinite(raw[2:]))
    np.testing.assert_array_equal(item["low_valid_mask_1d"].numpy(), np.isfinite(raw[:2]).any(0, keepdims=True))
    np.testing.assert_array_equal(item["land_mask"].numpy(), np.isfinite(raw[1:2]))
    assert "x" not in item and "mask" not in item
    augmented = PatchDataset(path, index, groups={"low": ["tmbrs-?"]}, land_mask="tmbrs-2", augment=True,
                             normalize=False, fill_value=np.nan)[wrapped]
    np.testing.assert_array_equal(augmented["land_mask"].numpy(), augmented["low_valid_mask"].numpy()[1:2])


def test_group_settings_that_cannot_work_are_explained(store):
    path, index, _ = store
    with pytest.raises(ValueError, match=r"groups.y: pattern 'thetao-d\*' matches no feature of .*tmbrs-1, tmbrs-2"):
        PatchDataset(path, index, groups={"y": ["thetao-d*"]})
    with pytest.raises(ValueError, match="land_mask comes with groups"):
        PatchDataset(path, index, land_mask="tmbrs-1")
    with pytest.raises(ValueError, match="give either features .* or groups"):
        PatchDataset(path, index, features=["tmbrs-1"], groups={"x": ["tmbrs-1"]})
    with pytest.raises(ValueError, match="land_mask: .* has no feature 'thetao-d1'"):
        PatchDataset(path, index, groups={"x": ["tmbrs-1"]}, land_mask="thetao-d1")
