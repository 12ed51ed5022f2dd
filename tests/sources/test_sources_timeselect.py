"""Time selection: intervals, hours of day, hours from local solar noon; and through ingest."""

from __future__ import annotations

import cftime
import numpy as np
import pytest

from satflow.config import ConfigError, load_config
from satflow.sources.options import TimeSelection
from satflow.sources.timeselect import hours_from_solar_noon, select_steps

SIX_HOURLY = np.datetime64("2020-01-01T00", "ns") + np.arange(12) * np.timedelta64(6, "h")  # 3 days


def selection(**settings) -> TimeSelection:
    return TimeSelection.model_validate(settings)


def selected(times, **settings) -> list[str]:
    return [str(t)[:13] for t in times[select_steps(times, selection(**settings))]]


def test_several_intervals_start_inclusive_end_exclusive():
    intervals = [{"start": "2020-01-01T06", "end": "2020-01-01T18"}, {"start": "2020-01-03T00", "end": "2020-01-04"}]
    assert selected(SIX_HOURLY, intervals=intervals) == [
        "2020-01-01T06", "2020-01-01T12", "2020-01-03T00", "2020-01-03T06", "2020-01-03T12", "2020-01-03T18"]


def test_hours_of_day():
    assert selected(SIX_HOURLY[:4], hours=[0, 18]) == ["2020-01-01T00", "2020-01-01T18"]


@pytest.mark.parametrize("longitude, n_hours, expected", [
    (0.0, 0, ["T12"]),  # noon at Greenwich is 12 UTC
    (90.0, 0, ["T06"]),  # 6 h earlier 90 degrees east
    (-90.0, 0, ["T18"]),
    (180.0, 0, ["T00"]),
    (0.0, 6, ["T06", "T12", "T18"]),
    (45.0, 3, ["T06", "T12"]),  # local noon at 09 UTC: 06 and 12 are 3 h away
])
def test_hours_from_solar_noon(longitude, n_hours, expected):
    kept = selected(SIX_HOURLY[:4], N_hours_from_zenith=n_hours, solar_longitude=longitude)
    assert [t[10:] for t in kept] == expected


def test_solar_longitude_defaults_to_the_grid_centre_across_the_dateline():
    lon = np.array([170.0, 180.0, 190.0])  # a crop across the dateline, centred at 180
    keep = select_steps(SIX_HOURLY[:4], selection(N_hours_from_zenith=0), lon)
    assert keep.tolist() == [True, False, False, False]
    assert hours_from_solar_noon(np.array([23.0]), 180.0).tolist() == [1.0]


def test_all_filters_must_pass():
    kept = selected(SIX_HOURLY, intervals=[{"start": "2020-01-02", "end": "2020-01-03"}], hours=[12, 18],
                    N_hours_from_zenith=3, solar_longitude=0)
    assert kept == ["2020-01-02T12"]


def test_cftime_times_are_selected():
    times = np.array([cftime.datetime(2000, 2, 30, h, calendar="360_day") for h in (0, 6, 12, 18)], dtype=object)
    keep = select_steps(times, selection(hours=[6], intervals=[{"start": "2000-02-30", "end": "2000-03-01"}]))
    assert keep.tolist() == [False, True, False, False]


@pytest.mark.parametrize("override, message", [
    ("ingest.source.time_selection.hours=[24]", "hours must lie in 0..23 (got [24])"),
    ("ingest.source.time_selection.intervals=[{start: 2020-01-02, end: 2020-01-01}]",
     "interval start 2020-01-02 must be before its end 2020-01-01"),
    ("ingest.source.time_selection.N_hours_from_zenith=13", "less than or equal to 12"),
])
def test_invalid_selection_is_refused_by_key(override, message):
    with pytest.raises(ConfigError, match="ingest.source.time_selection") as raised:
        load_config(None, [override])
    assert message in str(raised.value)


def test_ingest_keeps_only_selected_steps(tmp_path):
    import xarray as xr

    from satflow.ingest import IngestError, run_ingest
    from satflow.sources.samples import write_amsua_sample

    files = write_amsua_sample(tmp_path / "in", steps=4, resolution=10.0, seed=1)
    config = load_config(None, ["ingest.source.time_selection.hours=[6, 18]"]).ingest
    run_ingest([str(p) for p in files], tmp_path / "s.zarr", config, progress=False)
    ds = xr.open_zarr(tmp_path / "s.zarr")
    assert [str(t)[11:13] for t in ds.time.values] == ["06", "18"]
    assert [v.rsplit("/", 1)[-1] for v in ds.source_file.values] == ["1bamua_20200101_t06.nc", "1bamua_20200101_t18.nc"]
    none = load_config(None, ["ingest.source.time_selection.hours=[3]"]).ingest
    with pytest.raises(IngestError, match=r"no time step of the 4 input\(s\) passes ingest.source.time_selection"):
        run_ingest([str(p) for p in files], tmp_path / "t.zarr", none, progress=False)
