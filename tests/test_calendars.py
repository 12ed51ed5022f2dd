"""Times numpy cannot hold: a year-0 climatology shaped like COADS, 360_day and noleap model output.

Each is ingested, then read back through xr.open_zarr (cftime), inspect, index (time filters,
time splits, windows), export (NPZ and CF NetCDF) and the dataset.
"""

from __future__ import annotations

from pathlib import Path

import cftime
import netCDF4
import numpy as np
import pytest
import xarray as xr

from satflow.config import load_config
from satflow.ingest import run_ingest
from satflow.store import open_store

MONTH_MIDDLES_HOURS = [366.0 + 24 * 30.4375 * k for k in range(12)]  # 0000-01-16T06 and every ~30.4 days
CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)
# Decoded independently of satflow: cftime counts year 0 in the proleptic Gregorian calendar (ISO 8601).
EXPECTED = cftime.num2date(MONTH_MIDDLES_HOURS, "hours since 0000-01-01 00:00:00", "proleptic_gregorian")


def write_coads_like(path: Path) -> Path:
    """Like COADS climatology: TIME in 'hour since 0000-01-01 00:00:00', mid-month values, COADSX/COADSY axes."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("COADSX", 36)
        nc.createDimension("COADSY", 18)
        nc.createDimension("TIME", None)
        x = nc.createVariable("COADSX", "f8", ("COADSX",))
        x.units, x.modulo = "degrees_east", 360.0
        x[:] = np.arange(21.0, 381.0, 10.0)  # 21E .. 371E: wraps past the dateline like COADS
        y = nc.createVariable("COADSY", "f8", ("COADSY",))
        y.units = "degrees_north"
        y[:] = np.arange(-85.0, 90.0, 10.0)
        t = nc.createVariable("TIME", "f8", ("TIME",))
        t.units, t.time_origin, t.modulo = "hour since 0000-01-01 00:00:00", "01-JAN-0000 00:00:00", " "
        t[:] = MONTH_MIDDLES_HOURS
        sst = nc.createVariable("SST", "f4", ("TIME", "COADSY", "COADSX"), fill_value=np.float32(-1e34))
        sst.units, sst.missing_value = "Deg C", np.float32(-1e34)
        rng = np.random.default_rng(0)
        values = 15 + 10 * rng.standard_normal((12, 18, 36)).astype(np.float32)
        values[:, :2] = -1e34  # polar rows: no data
        sst[:] = values
    return path


def write_model_calendar(path: Path, calendar: str, days: list[float]) -> Path:
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("time", None), ("lat", 6), ("lon", 8)):
            nc.createDimension(name, size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 2001-01-01 00:00:00", calendar
        t[:] = days
        lat, lon = nc.createVariable("lat", "f8", ("lat",)), nc.createVariable("lon", "f8", ("lon",))
        lat.units, lon.units = "degrees_north", "degrees_east"
        lat[:], lon[:] = np.linspace(-50, 50, 6), np.linspace(-160, 160, 8)
        tas = nc.createVariable("tas", "f4", ("time", "lat", "lon"))
        tas.units = "K"
        tas[:] = 280 + np.arange(len(days) * 48, dtype=np.float32).reshape(len(days), 6, 8)
    return path


@pytest.fixture(scope="module")
def climatology_store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("coads")
    source = write_coads_like(folder / "coads_climatology.nc")
    store = folder / "coads.zarr"
    config = load_config(None, ["ingest.chunks.lat=8", "ingest.chunks.lon=16"]).ingest
    report = run_ingest([str(source)], store, config, progress=False)
    assert report.skipped == []
    return store


def test_year_zero_climatology_round_trips_as_cftime(climatology_store):
    ds = xr.open_zarr(climatology_store, decode_times=CFTIME)
    assert isinstance(ds.indexes["time"], xr.CFTimeIndex)
    assert ds["time"].values[0] == cftime.DatetimeProlepticGregorian(0, 1, 16, 6)
    assert list(ds["time"].values) == list(EXPECTED)
    assert ds["time"].encoding["calendar"] == "proleptic_gregorian"
    assert ds.sizes == {"time": 12, "feature": 1, "lat": 18, "lon": 36}
    x = ds["X"].values
    assert np.isnan(x[:, :, :2]).all() and np.isfinite(x[:, :, 2:]).all()
    np.testing.assert_array_equal(ds["M"].values, np.isfinite(x))
    assert open_store(climatology_store)["time"].values[3] == cftime.DatetimeProlepticGregorian(0, 4, 16, 13, 30)


def test_year_zero_climatology_inspect(climatology_store):
    from satflow.summary import format_summary, summarize_store

    summary = summarize_store(climatology_store)
    assert [step["time"] for step in summary["time_steps"]][:2] == ["0000-01-16T06:00:00", "0000-02-15T16:30:00"]
    assert "0000-01-16T06:00:00 .. 0000-12-16T01:30:00" in format_summary(summary)


def test_year_zero_climatology_index_filters_splits_windows_and_dataset(climatology_store, tmp_path):
    from satflow.dataset import PatchDataset
    from satflow.index.build import build_index
    from satflow.index.io import read_index
    from satflow.index.options import IndexConfig
    from satflow.index.windows import time_windows

    config = IndexConfig.model_validate({"patch_size": 6, "stride": 6, "time_start": "0000-03", "time_end": "0000-10-31",
                                         "split": {"mode": "time", "time_block": 2, "time_buffer": 0}})
    result = build_index(climatology_store, tmp_path / "index.parquet", config)
    frame = read_index(tmp_path / "index.parquet", store=climatology_store)
    assert result.rows == len(frame) > 0
    assert sorted(frame["t"].unique()) == list(range(2, 10))  # March .. October
    assert frame["time"].iloc[0] == "0000-03-17T03:00:00" and frame["time"].is_monotonic_increasing
    assert frame.groupby("t")["split"].nunique().max() == 1  # a time step never spans two splits
    windows = time_windows(frame, length=2)
    assert len(windows) > 0 and windows.groupby("sequence_id")["t"].apply(lambda t: np.ptp(t)).max() == 1
    split = frame["split"].iloc[0]
    item = PatchDataset(climatology_store, tmp_path / "index.parquet", split=split)[0]
    assert item["time"] == frame[frame["split"] == split]["time"].iloc[0] and item["x"].shape == (1, 6, 6)


def test_year_zero_climatology_export(climatology_store, tmp_path):
    from satflow.export import export_netcdf, export_npz

    export_npz(climatology_store, tmp_path / "c.npz", time_start="0000-06", time_end="0000-07")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert list(npz["time"]) == ["0000-06-16T10:30:00", "0000-07-16T21:00:00"]
        assert npz["X"].shape == (2, 1, 18, 36)
    export_netcdf(climatology_store, tmp_path / "c.nc")
    back = xr.open_dataset(tmp_path / "c.nc", decode_times=CFTIME)
    np.testing.assert_array_equal(back["time"].values, xr.open_zarr(climatology_store, decode_times=CFTIME)["time"].values)
    np.testing.assert_array_equal(back["SST"].values, xr.open_zarr(climatology_store)["X"].values[:, 0])


@pytest.mark.parametrize("calendar, days, expected", [
    ("360_day", [58, 59, 60], [cftime.Datetime360Day(2001, 2, 29), cftime.Datetime360Day(2001, 2, 30),
                               cftime.Datetime360Day(2001, 3, 1)]),
    ("noleap", [58, 59], [cftime.DatetimeNoLeap(2001, 2, 28), cftime.DatetimeNoLeap(2001, 3, 1)]),
])
def test_model_calendars_keep_their_dates(tmp_path, calendar, days, expected):
    source = write_model_calendar(tmp_path / f"tas_{calendar}.nc", calendar, days)
    store = tmp_path / "model.zarr"
    run_ingest([str(source)], store, load_config().ingest, progress=False)
    ds = xr.open_zarr(store, decode_times=CFTIME)
    assert list(ds["time"].values) == expected and ds["time"].encoding["calendar"] == calendar
    np.testing.assert_array_equal(ds["X"].values[:, 0], xr.open_dataset(source)["tas"].values)
    assert len(ds.sel(time="2001-02").time) == len(days) - 1  # a partial date selects in the file's calendar


def test_a_file_in_another_calendar_is_skipped_with_the_reason(tmp_path):
    first = write_model_calendar(tmp_path / "a_20010101.nc", "360_day", [0, 1])
    other = write_model_calendar(tmp_path / "b_20010103.nc", "noleap", [2])
    report = run_ingest([str(first), str(other)], tmp_path / "mixed.zarr", load_config().ingest, progress=False)
    assert [(Path(s.path).name, s.reason.split(";")[0]) for s in report.skipped] == [
        ("b_20010103.nc", "different calendar (noleap vs 360_day in a_20010101.nc)")]
