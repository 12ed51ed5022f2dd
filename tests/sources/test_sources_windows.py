"""Time windows on any source: window means over finite values (against numpy), counts, broken members, aux."""

from __future__ import annotations

import numpy as np
import pytest
from sources_helpers import LAT, LON, lat_lon_variables, time_variable, write_nc

from satflow.ingest.tasks import fill_steps
from satflow.sources.base import group_inputs, read_input, scan_input
from satflow.sources.options import SourceConfig
from satflow.sources.windows import WINDOW_COUNT

FILL = np.float32(-999.0)  # gridded tests keep LON's 0..360 order (lon_convention "0..360")


def daily_values(n_days: int, seed: int = 0) -> np.ndarray:
    """(day, lat, lon) with 30% NaN gaps and some real zeros."""
    rng = np.random.default_rng(seed)
    values = rng.normal(10.0, 3.0, (n_days, LAT.size, LON.size)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    values[0, 0, 0] = 0.0
    return values


def write_days(path, values: np.ndarray, first_day: int):
    """Daily steps from 2020-01-01 + first_day; NaN written as _FillValue."""
    stored = np.where(np.isnan(values), FILL, values).astype(np.float32)
    return write_nc(path, {**lat_lon_variables(), **time_variable((first_day + np.arange(len(values))) * 24.0),
                           "x": (("time", "lat", "lon"), stored, {"_FillValue": FILL})})


def windowed(paths, source: SourceConfig):
    inputs, skipped = group_inputs([scan_input(str(p), source) for p in paths], source)
    assert skipped == []
    return inputs, np.concatenate([read_input(i, source) for i in inputs])


def numpy_window(values: np.ndarray, members) -> tuple[np.ndarray, np.ndarray]:
    part = values[list(members)]
    count = np.isfinite(part).sum(0).astype(np.float32)
    with np.errstate(invalid="ignore"):
        mean = np.nansum(part, 0) / count
    return np.where(count > 0, mean, np.nan), np.where(count > 0, count, np.nan)


def test_calendar_windows_are_numpy_means_over_finite_values(tmp_path):
    values = daily_values(10)
    paths = [write_days(tmp_path / "a.nc", values[:5], 0), write_days(tmp_path / "b.nc", values[5:], 5)]
    inputs, out = windowed(paths, SourceConfig(lon_convention="0..360", time_window="P7D"))
    # Epoch-aligned weeks: 1970-01-01 is a Thursday, so weeks start on Thursdays: 2019-12-26, 2020-01-02, 2020-01-09.
    assert [str(t)[:10] for i in inputs for t in i.times] == ["2019-12-26", "2020-01-02", "2020-01-09"]
    assert inputs[0].features == ("x", WINDOW_COUNT)
    for k, members in enumerate([range(0, 1), range(1, 8), range(8, 10)]):
        mean, count = numpy_window(values, members)
        np.testing.assert_allclose(out[k, 0], mean, rtol=1e-6)
        np.testing.assert_array_equal(out[k, 1], count)
    assert out[0, 0, 0, 0] == 0.0 and out[0, 1, 0, 0] == 1.0  # a real 0 stays a value
    assert inputs[1].path == f"{paths[0]};{paths[1]}"  # provenance: the files the window draws on


def test_centred_windows_overlap_and_take_their_centres_as_times(tmp_path):
    values = daily_values(10, seed=1)
    paths = [write_days(tmp_path / "a.nc", values, 0)]
    source = SourceConfig(lon_convention="0..360", time_window="P5D", time_window_anchor="centred",
                          time_window_centres=["2020-01-03T12:00", "2020-01-05T12:00"])
    inputs, out = windowed(paths, source)
    assert [str(t)[:16] for t in inputs[0].times] == ["2020-01-03T12:00", "2020-01-05T12:00"]
    for k, members in enumerate([range(0, 5), range(2, 7)]):  # [c - 2.5 d, c + 2.5 d): Jan 1..5 and Jan 3..7
        mean, count = numpy_window(values, members)
        np.testing.assert_allclose(out[k, 0], mean, rtol=1e-6)
        np.testing.assert_array_equal(out[k, 1], count)


def test_calendar_months_and_derived_features_on_window_means(tmp_path):
    values = daily_values(60, seed=2)  # 2020-01-01 .. 2020-02-29
    paths = [write_days(tmp_path / "a.nc", values, 0)]
    source = SourceConfig(lon_convention="0..360", time_window="P1M", derived={"twice": "x * 2"})
    inputs, out = windowed(paths, source)
    assert [str(t)[:10] for t in inputs[0].times] == ["2020-01-01", "2020-02-01"]
    assert inputs[0].features == ("x", WINDOW_COUNT, "twice")
    mean, _ = numpy_window(values, range(31, 60))
    np.testing.assert_allclose(out[1, 0], mean, rtol=1e-6)
    np.testing.assert_allclose(out[1, 2], 2 * mean, rtol=1e-6)


def test_a_broken_member_is_reported_and_the_window_averages_the_others(tmp_path):
    values = daily_values(6, seed=3)
    paths = [write_days(tmp_path / f"d{k}.nc", values[k:k + 1], k) for k in range(6)]
    source = SourceConfig(lon_convention="0..360", time_window="P3D", time_window_anchor="centred",
                          time_window_centres=["2020-01-02T12:00", "2020-01-05T12:00"])
    inputs, skipped = group_inputs([scan_input(str(p), source) for p in paths], source)
    paths[1].write_bytes(b"not a netcdf file any more")  # broken after the scan, while writing
    out = np.empty((2, 2, LAT.size, LON.size), np.float32)
    files, problems = fill_steps(out, 0, _slots(inputs), {i.path: i for i in inputs}, source)
    assert [p.path for p in problems] == [str(paths[1])] and problems[0].reason.startswith("cannot open as NetCDF (")
    mean, count = numpy_window(values, [0, 2])  # days 1..3 without day 2
    np.testing.assert_allclose(out[0, 0], mean, rtol=1e-6)
    np.testing.assert_array_equal(out[0, 1], count)
    mean, _ = numpy_window(values, [3, 4, 5])  # the other window is untouched
    np.testing.assert_allclose(out[1, 0], mean, rtol=1e-6)
    assert files == [inputs[0].path, inputs[1].path]


def _slots(inputs):
    from satflow.ingest.plan import Slot

    slots = [(t, i.path, s) for i in inputs for s, t in enumerate(i.times)]
    return [Slot(k, t, p, s) for k, (t, p, s) in enumerate(sorted(slots, key=lambda e: e[0]))]


def test_profiles_window_is_the_mean_of_its_months(tmp_path):
    from satflow.sources.samples import write_profiles_sample

    paths = write_profiles_sample(tmp_path, start="2020-01", steps=4, floats=60)
    plain = SourceConfig(kind="profiles")
    months = np.concatenate([read_input(scan_input(str(p), plain), plain) for p in paths])
    inputs, out = windowed(paths, SourceConfig(kind="profiles", time_window="P2M"))
    assert [str(t)[:10] for i in inputs for t in i.times] == ["2020-01-01", "2020-03-01"]
    assert inputs[0].features[-2:] == ("thetao-count", WINDOW_COUNT)
    for k, members in enumerate([(0, 1), (2, 3)]):
        part = months[list(members)]
        for f in range(part.shape[1]):
            mean, count = numpy_window(part[:, f], range(2))
            np.testing.assert_allclose(out[k, f], mean, rtol=1e-6)
        assert np.isfinite(out[k, 0]).sum() > np.isfinite(part[0, 0]).sum()  # two months fill more cells
        np.testing.assert_array_equal(out[k, -1], numpy_window(np.isfinite(part).any(1).astype(np.float32)
                                                               * np.where(np.isfinite(part).any(1), 1, np.nan),
                                                               range(2))[1])


def test_swath_windows_average_the_binned_windows(tmp_path):
    from satflow.sources.samples import write_amsua_swath_sample

    paths = write_amsua_swath_sample(tmp_path, start="2020-01-01", steps=2)
    plain = SourceConfig(kind="swath", swath={"resolution": 10, "window_hours": 6})
    binned_inputs, _ = group_inputs([scan_input(str(p), plain) for p in paths], plain)
    binned = {str(i.times[0]): read_input(i, plain)[0] for i in binned_inputs}
    daily = SourceConfig(kind="swath", swath={"resolution": 10, "window_hours": 6}, time_window="P1D")
    inputs, out = windowed(paths, daily)
    day = str(inputs[0].times[0])[:10]
    members = np.stack([v for t, v in binned.items() if t.startswith(day)])
    assert len(members) >= 2
    mean, count = numpy_window(members[:, 0], range(len(members)))
    np.testing.assert_allclose(out[0, 0], mean, rtol=1e-5)
    np.testing.assert_array_equal(out[0, -1], numpy_window(np.where(np.isfinite(members).any(1), 1.0, np.nan),
                                                           range(len(members)))[1])


def test_regrid_windows_average_on_the_domain(tmp_path):
    lat, lon = np.arange(40.0, 60.0, 0.5), np.arange(-20.0, 10.0, 0.5)
    rng = np.random.default_rng(4)
    values = rng.normal(280, 5, (3, lat.size, lon.size)).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    paths = [write_nc(tmp_path / f"r{k}.nc", {**lat_lon_variables(lat, lon), **time_variable((k * 6.0,)),
                      "tb": (("time", "lat", "lon"), np.where(np.isnan(values[k:k + 1]), FILL, values[k:k + 1]),
                             {"_FillValue": FILL})}) for k in range(3)]
    domain = {"central_latitude": 50.0, "central_longitude": -5.0, "l_zonal": 600_000.0, "l_meridional": 400_000.0,
              "resolution": 50_000.0}
    plain = SourceConfig(kind="regrid", domain=domain, regrid={"method": "nearest"})
    scenes = np.concatenate([read_input(scan_input(str(p), plain), plain) for p in paths])
    inputs, out = windowed(paths, SourceConfig(kind="regrid", domain=domain, regrid={"method": "nearest"},
                                               time_window="P1D"))
    mean, count = numpy_window(scenes[:, 0], range(3))
    np.testing.assert_allclose(out[0, 0], mean, rtol=1e-6)
    np.testing.assert_array_equal(out[0, 1], count)
    assert np.isnan(out[0, 0]).any() and np.nanmax(count) == 3


def test_window_options_are_checked_when_the_config_loads():
    with pytest.raises(ValueError, match="calendar months have no fixed length to centre"):
        SourceConfig(time_window="P1M", time_window_centres=["2020-01-15"])
    with pytest.raises(ValueError, match="time_window_centres are the centres of centred windows"):
        SourceConfig(time_window="P1D", time_window_anchor="calendar", time_window_centres=["2020-01-15"])
    assert SourceConfig(time_window="P1D", time_window_centres=["2020-01-15"]).window_anchor == "centred"
    with pytest.raises(ValueError, match="combine months with nothing else"):
        SourceConfig(time_window="P1M2D")
    with pytest.raises(ValueError, match="not an ISO 8601 duration"):
        SourceConfig(time_window="weekly")
    with pytest.raises(ValueError, match="time_window_centres must be ISO times"):
        SourceConfig(time_window="P1D", time_window_centres=["mid-January"])


# --- through ingest: auxiliary products and resume -------------------------------------------------
def primary_and_daily_aux(tmp_path):
    primary_values = daily_values(2, seed=5)
    primary = tmp_path / "primary.nc"
    write_nc(primary, {**lat_lon_variables(), **time_variable((0.0, 240.0)),  # 2020-01-01 and 2020-01-11
                       "x": (("time", "lat", "lon"), np.nan_to_num(primary_values, nan=1.0), {})})
    aux_values = daily_values(14, seed=6)
    for day in range(14):
        write_days(tmp_path / f"aux_{day:02d}.nc", aux_values[day:day + 1], day)
    return primary, aux_values


def windowed_aux_config(tmp_path):
    from satflow.ingest.options import IngestConfig

    return IngestConfig(source={"lon_convention": "0..360"}, aux_products={"sst": {
        "inputs": [str(tmp_path / "aux_*.nc")], "scene_mapping_strategy": "all_scenes_within_dt_aux",
        "source": {"lon_convention": "0..360", "time_window": "P5D", "time_window_anchor": "centred"}}})


def test_an_auxiliary_product_averages_days_centred_on_the_primary_times(tmp_path):
    import xarray as xr

    from satflow.ingest.api import run_ingest

    primary, aux_values = primary_and_daily_aux(tmp_path)
    store = tmp_path / "store.zarr"
    report = run_ingest([str(primary)], store, windowed_aux_config(tmp_path), progress=False)
    assert report.skipped == []
    ds = xr.open_zarr(store)
    assert [str(f) for f in ds["feature"].values] == ["x", "sst/x", f"sst/{WINDOW_COUNT}"]
    # Centred on 2020-01-01 00:00: [Dec 29 12:00, Jan 3 12:00) holds Jan 1..3; on Jan 11: Jan 9..13.
    for t, days in enumerate([range(0, 3), range(8, 13)]):
        mean, count = numpy_window(aux_values, days)
        np.testing.assert_allclose(ds["X"].values[t, 1], mean, rtol=1e-6)
        np.testing.assert_array_equal(ds["X"].values[t, 2], count)
    assert [str(a)[:10] for a in ds["aux_time"].values[:, 0]] == ["2020-01-01", "2020-01-11"]
    assert [f.rsplit("/", 1)[-1] for f in str(ds["aux_source_file"].values[1, 0]).split(";")] == \
        [f"aux_{d:02d}.nc" for d in range(8, 13)]


def test_a_windowed_store_resumes_byte_identical(tmp_path):
    import xarray as xr

    from satflow.ingest.api import run_ingest, scan_and_plan
    from satflow.store import open_group

    primary, _ = primary_and_daily_aux(tmp_path)
    store, config = tmp_path / "store.zarr", windowed_aux_config(tmp_path)
    run_ingest([str(primary)], store, config, progress=False)
    clean = xr.open_zarr(store).load()
    group = open_group(str(store), mode="r+")
    group["X"][1] = np.nan  # a region lost before its flag was set
    group["ingested"][1] = 0
    plan = scan_and_plan([str(primary)], store, config)
    assert plan.mode == "resume" and [(r.t0, r.t1) for r in plan.regions] == [(1, 2)]
    run_ingest([str(primary)], store, config, progress=False)
    xr.testing.assert_identical(xr.open_zarr(store).load(), clean)


def test_a_broken_auxiliary_member_is_reported_and_its_window_averages_the_others(tmp_path):
    import xarray as xr

    from satflow.ingest.api import execute_plan, scan_and_plan

    primary, aux_values = primary_and_daily_aux(tmp_path)
    store, config = tmp_path / "store.zarr", windowed_aux_config(tmp_path)
    plan = scan_and_plan([str(primary)], store, config)
    broken = tmp_path / "aux_09.nc"
    broken.write_bytes(b"truncated")  # broken after planning, while the region is written
    report = execute_plan(plan, config, progress=False)
    assert [(s.path, s.reason.split(" (")[0]) for s in report.skipped] == \
        [(str(broken), "auxiliary product sst: cannot open as NetCDF")]
    x = xr.open_zarr(store)["X"].values
    mean, count = numpy_window(aux_values, [8, 10, 11, 12])  # Jan 9..13 without Jan 10
    np.testing.assert_allclose(x[1, 1], mean, rtol=1e-6)
    np.testing.assert_array_equal(x[1, 2], count)


def test_calendar_months_of_a_model_calendar(tmp_path):
    values = np.arange(70 * 12, dtype=np.float32).reshape(70, LAT.size, LON.size)
    path = write_nc(tmp_path / "c.nc", {**lat_lon_variables(), **time_variable(np.arange(70.0), "days since 0001-01-01",
                                                                                 "360_day"),
                                        "x": (("time", "lat", "lon"), values, {})})
    inputs, out = windowed([path], SourceConfig(lon_convention="0..360", time_window="P1M"))
    assert [(t.year, t.month, t.day, t.calendar) for t in inputs[0].times] == \
        [(1, 1, 1, "360_day"), (1, 2, 1, "360_day"), (1, 3, 1, "360_day")]  # 30-day months
    np.testing.assert_array_equal(out[:, 0], np.stack([values[0:30].mean(0), values[30:60].mean(0),
                                                       values[60:70].mean(0)]))
    np.testing.assert_array_equal(out[:, 1, 0, 0], [30.0, 30.0, 10.0])
