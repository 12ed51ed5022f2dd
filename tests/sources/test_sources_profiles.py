"""The profiles source: resampling against numpy.interp, rasterisation against a brute-force loop
(several profiles per cell, dateline, pole, cutoff edges, pressure), QC, broken files, the sample end to end."""

from __future__ import annotations

import json
from collections import defaultdict

import netCDF4
import numpy as np
import pytest
import xarray as xr

from satflow.cli import main
from satflow.config import ConfigError, load_config
from satflow.ingest import run_ingest
from satflow.sources.base import SourceError, read_input, scan_input
from satflow.sources.rasterise import pressure_to_depth, resample_profiles
from satflow.sources.samples import write_ocean_sample, write_profiles_sample
from sources_helpers import write_nc

FILL = 99999.0
JAN_2020 = 25567.0  # 2020-01-01 in days since 1950-01-01


def profiles_source(*overrides):
    return load_config(None, ["ingest.source.kind=profiles", *overrides]).ingest.source


def write_profiles(path, lat, lon, depth, values, *, juld=None, level_qc=None, profile_qc=None, position_qc=None,
                   pressure=None):
    """An EN4-layout file; NaN becomes the 99999 fill; flags default to '1'."""
    n, levels = np.shape(values)
    filled = lambda a: np.where(np.isfinite(a), a, FILL)  # noqa: E731
    chars = lambda a, shape: np.asarray(np.full(shape, b"1") if a is None else a, "S1")  # noqa: E731
    variables = {
        "JULD": (("N_PROF",), filled(np.full(n, JAN_2020 + 14.5) if juld is None else np.asarray(juld, float)),
                 {"_FillValue": FILL, "units": "days since 1950-01-01 00:00:00 utc"}),
        "LATITUDE": (("N_PROF",), np.asarray(lat, float), {"_FillValue": FILL}),
        "LONGITUDE": (("N_PROF",), np.asarray(lon, float), {"_FillValue": FILL}),
        "POSITION_QC": (("N_PROF",), chars(position_qc, n), {}),
        "PROFILE_POTM_QC": (("N_PROF",), chars(profile_qc, n), {}),
        "POTM_CORRECTED": (("N_PROF", "N_LEVELS"), filled(np.asarray(values, float)).astype(np.float32),
                           {"_FillValue": np.float32(FILL), "units": "degree_Celsius"}),
        "POTM_CORRECTED_QC": (("N_PROF", "N_LEVELS"), chars(level_qc, (n, levels)), {}),
    }
    if depth is not None:
        variables["DEPH_CORRECTED"] = (("N_PROF", "N_LEVELS"), filled(np.asarray(depth, float)).astype(np.float32),
                                       {"_FillValue": np.float32(FILL)})
    if pressure is not None:
        variables["PRES"] = (("N_PROF", "N_LEVELS"), filled(np.asarray(pressure, float)).astype(np.float32),
                             {"_FillValue": np.float32(FILL)})
    return write_nc(path, variables)


# --- depth axis --------------------------------------------------------------------------------
def test_pressure_to_depth_meets_the_unesco_check_value():
    assert round(float(pressure_to_depth(10000.0, 30.0)), 3) == 9712.653  # UNESCO 1983, p. 28
    assert pressure_to_depth(0.0, 45.0) == 0.0


def test_linear_resampling_equals_numpy_interp_inside_the_profile_and_nan_outside():
    rng = np.random.default_rng(1)
    depth = np.sort(rng.uniform(0, 300, (200, 12)), axis=1)
    depth[:, ::2] = depth[:, ::2][:, ::-1]  # levels out of order
    values = rng.normal(10, 5, depth.shape)
    values[rng.random(depth.shape) < 0.2] = np.nan
    depth[rng.random(depth.shape) < 0.1] = np.nan
    targets = np.array([0.0, 5.0, 50.0, 100.5, 250.0, 299.0, 400.0])
    got = resample_profiles(depth, values, targets, "linear")
    for p in range(depth.shape[0]):
        ok = np.isfinite(depth[p]) & np.isfinite(values[p])
        order = np.argsort(depth[p][ok])
        z, v = depth[p][ok][order], values[p][ok][order]
        inside = (targets >= z.min()) & (targets <= z.max()) if z.size else np.zeros(targets.size, bool)
        expected = np.where(inside, np.interp(targets, z, v) if z.size else np.nan, np.nan).astype(np.float32)
        np.testing.assert_allclose(got[p], expected, rtol=1e-6)
    assert np.isnan(got[:, -1]).all() and np.isfinite(got[:, 2:5]).mean() > 0.8


def test_nearest_takes_the_closest_valid_level_within_the_cutoff():
    depth = np.array([[4.0, 20.0, 30.0, 60.0]])
    values = np.array([[1.0, 2.0, np.nan, 4.0]])  # 30 m is invalid: 25 m is 5 m from 20 and 35 m from 60
    targets = np.array([0.0, 14.0, 15.0, 25.0, 40.0, 50.0, 70.1])
    got = resample_profiles(depth, values, targets, "nearest", max_distance_m=10.0)
    # 0 m: 4 m away; 14: 6 from 20 (10 from 4); 15: 11 from 4, 5 from 20; 40: 20 away from both -> none;
    # 50: exactly the cutoff from 60; 70.1: just beyond it.
    np.testing.assert_array_equal(got[0], np.array([1.0, 2.0, 2.0, 2.0, np.nan, 4.0, np.nan], np.float32))
    tie = resample_profiles(np.array([[10.0, 20.0]]), np.array([[1.0, 2.0]]), np.array([15.0]), "nearest")
    assert tie[0, 0] == 1.0  # a tie takes the shallower level


# --- rasterisation -----------------------------------------------------------------------------
def _at_target(z, v, target, method, cutoff):
    """One profile at one depth: np.interp inside its range, or the nearest level (shallower on ties)."""
    if not z.size:
        return None
    if method == "linear":
        return np.interp(target, z, v) if z.min() <= target <= z.max() else None
    nearest = int(np.argmin(np.abs(z - target)))  # z ascending: the first minimum is the shallower
    return v[nearest] if abs(z[nearest] - target) <= cutoff else None


def _brute_force(lat, lon, depth, values, targets, resolution, n_lat, n_lon, method="linear", cutoff=10.0):
    """Per (level, cell): the mean of the resampled profiles, one Python loop over profiles."""
    sums, counts, profiles = defaultdict(float), defaultdict(int), defaultdict(int)
    for p in range(len(lat)):
        ok = np.isfinite(depth[p]) & np.isfinite(values[p])
        z, v = depth[p][ok], values[p][ok]
        row = min(int((lat[p] + 90.0) // resolution), n_lat - 1)
        col = int((lon[p] % 360.0 + 180.0) % 360.0 // resolution) % n_lon  # -180..180 columns
        seen = False
        for k, target in enumerate(targets):
            value = _at_target(z, v, target, method, cutoff)
            if value is not None:
                sums[k, row, col] += float(np.float32(value))
                counts[k, row, col] += 1
                seen = True
        profiles[row, col] += seen
    out = np.full((len(targets) + 1, n_lat, n_lon), np.nan, np.float32)
    for (k, row, col), total in sums.items():
        out[k, row, col] = total / counts[k, row, col]
    for (row, col), n in profiles.items():
        if n:
            out[-1, row, col] = n
    return out


@pytest.mark.parametrize("method", ["linear", "nearest"])
def test_rasterisation_equals_a_brute_force_loop(tmp_path, method):
    rng = np.random.default_rng(7)
    n, levels = 400, 15
    lat = rng.uniform(-90, 90, n)
    lon = rng.uniform(-180, 180, n)
    lat[:6] = [90.0, 89.99, -90.0, 10.0, 10.0, 10.0]  # both poles
    lon[:6] = [0.0, 179.99, 5.0, 180.0, -180.0, 179.999]  # one dateline cell
    lat[6:60], lon[6:60] = rng.uniform(30, 40, 54), rng.uniform(-10, 10, 54)  # several profiles per cell
    depth = np.sort(rng.uniform(0, 220, (n, levels)), axis=1)
    values = rng.normal(8.0, 6.0, (n, levels))
    values[:10] = 0.0  # a real 0 degC is a value
    values[rng.random(values.shape) < 0.1] = np.nan
    depth[n - 50:, 5:] = np.nan  # shallow profiles
    pressure = np.full(depth.shape, np.nan)
    by_pressure = rng.random(n) < 0.2  # these give pressure only
    pressure[by_pressure] = depth[by_pressure] / 0.99
    depth_in_file = np.where(by_pressure[:, None], np.nan, depth)
    path = write_profiles(tmp_path / "p.nc", lat, lon, depth_in_file, values, pressure=pressure)
    source = profiles_source("ingest.source.profiles.resolution=30", "ingest.source.profiles.depths=[0,10,100,200]",
                             f"ingest.source.profiles.resample={method}", "ingest.source.profiles.max_distance_m=8")
    info = scan_input(str(path), source)
    got = read_input(info, source)
    assert info.features == ("thetao-d1", "thetao-d2", "thetao-d3", "thetao-d4", "thetao-count")
    stored = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731  (the file holds float32)
    effective = np.where(by_pressure[:, None], pressure_to_depth(stored(pressure), lat[:, None]), stored(depth))
    expected = _brute_force(lat, lon, effective, values.astype(np.float32), [0, 10, 100, 200], 30.0, 6, 12,
                            method, cutoff=8.0)
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
    assert expected[-1, 5, 0] >= 1 and expected[-1, 0, 6] >= 1  # the pole rows are filled
    assert np.nanmax(expected[-1]) >= 8  # and some cell averages many profiles


def test_quality_flags_decide_which_profiles_and_levels_count(tmp_path):
    depth = np.array([[0.0, 10.0, 20.0]] * 5)
    values = np.array([[1.0, 2.0, 3.0], [11.0, 12.0, 13.0], [50.0, 50.0, 50.0], [60.0, 60.0, 60.0],
                       [70.0, 70.0, 70.0]])
    level_qc = np.array([[b"1", b"4", b"1"]] + [[b"1"] * 3] * 4)  # a spike at 10 m
    profile_qc = np.array([b"1", b"1", b"4", b"1", b"1"])  # a bad profile
    position_qc = np.array([b"1", b"1", b"1", b"4", b"1"])  # a wrong position
    juld = np.array([JAN_2020 + 3, JAN_2020 + 20, JAN_2020 + 5, JAN_2020 + 5, np.nan])  # a missing date
    path = write_profiles(tmp_path / "qc.nc", [1.0] * 5, [1.0] * 5, depth, values, juld=juld, level_qc=level_qc,
                          profile_qc=profile_qc, position_qc=position_qc)
    source = profiles_source("ingest.source.profiles.resolution=90", "ingest.source.profiles.depths=[0,10,20]")
    info = scan_input(str(path), source)
    got = read_input(info, source)[0, :, 1, 2]
    # 10 m: profile 0's spike is out, its linear value between 0 and 20 m (2.0) averages with 12.
    np.testing.assert_array_equal(got, np.array([6.0, 7.0, 8.0, 2.0], np.float32))
    assert info.times[0] == np.datetime64("2020-01-01")
    with netCDF4.Dataset(path, "a") as ds:  # EN4's profile-wise depth flag rejects profile 1's depths
        ds.createVariable("PROFILE_DEPH_QC", "S1", ("N_PROF",))[:] = np.array([b"1", b"4", b"1", b"1", b"1"])
    np.testing.assert_array_equal(read_input(info, source)[0, :, 1, 2], np.array([1.0, 2.0, 3.0, 1.0], np.float32))
    everything = profiles_source("ingest.source.profiles.resolution=90", "ingest.source.profiles.depths=[0,10,20]",
                                 "ingest.source.profiles.accepted_qc=['1','4']",
                                 "ingest.source.profiles.accepted_profile_qc=['1','4']")
    assert read_input(scan_input(str(path), everything), everything)[0, 3, 1, 2] == 4.0  # all but the no-date one


def test_an_all_bad_or_broken_file_is_skipped_by_name_and_nothing_else_is_lost(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = write_profiles(inputs / "good.nc", [1.0], [1.0], [[0.0, 10.0]], [[5.0, 6.0]])
    write_profiles(inputs / "bad.nc", [1.0], [1.0], [[0.0, 10.0]], [[5.0, 6.0]], juld=[JAN_2020 + 40],
                   level_qc=[[b"4", b"4"]])
    (inputs / "broken.nc").write_bytes(good.read_bytes()[:300])
    source = profiles_source("ingest.source.profiles.depths=[0,10]")
    with pytest.raises(SourceError, match=r"bad\.nc: no profile passes quality control \(of 1"):
        scan_input(str(inputs / "bad.nc"), source)
    config = load_config(None, ["ingest.source.kind=profiles", "ingest.source.profiles.depths=[0,10]"]).ingest
    report = run_ingest([str(inputs)], tmp_path / "p.zarr", config, progress=False)
    assert sorted(s.path.rsplit("/", 1)[1] for s in report.skipped) == ["bad.nc", "broken.nc"]
    store = xr.open_zarr(tmp_path / "p.zarr")
    assert store.sizes["time"] == 1 and store.source_file.values[0].endswith("good.nc")
    assert np.nansum(store.X.values) == 5.0 + 6.0 + 1.0  # both levels and the profile count


def test_depth_axis_from_a_gridded_file_and_config_errors(tmp_path):
    ocean = write_ocean_sample(tmp_path / "o", steps=1, resolution=10.0, depths=(5.0, 25.0, 75.0))[0]
    path = write_profiles(tmp_path / "p.nc", [1.0], [1.0], [[0.0, 100.0]], [[10.0, 20.0]])
    source = profiles_source(f"ingest.source.profiles.depth_from={ocean}")
    info = scan_input(str(path), source)
    assert info.features[:3] == ("thetao-d1", "thetao-d2", "thetao-d3") and len(info.features) == 4
    np.testing.assert_allclose(read_input(info, source)[0, :3, 45, 90], [10.5, 12.5, 17.5])
    with pytest.raises(ConfigError, match="either depths or depth_from"):
        profiles_source(f"ingest.source.profiles.depth_from={ocean}", "ingest.source.profiles.depths=[1]")
    with pytest.raises(ConfigError, match="strictly ascending"):
        profiles_source("ingest.source.profiles.depths=[10,5]")
    with pytest.raises(SourceError, match=r"variable\(s\) TEMP not found.*POTM_CORRECTED"):
        scan_input(str(path), profiles_source("ingest.source.profiles.variables=[TEMP]"))


# --- the sample, end to end --------------------------------------------------------------------
def test_sample_profiles_ingest_to_the_ocean_truth(tmp_path):
    assert main(["sample", "profiles", "--out", str(tmp_path / "p"), "--steps", "3"]) == 0
    ocean = write_ocean_sample(tmp_path / "o", steps=3)
    files = sorted((tmp_path / "p").glob("*.nc"))
    with netCDF4.Dataset(files[0]) as ds:
        assert 300 < ds.dimensions["N_PROF"].size < 600 and (ds["POTM_CORRECTED_QC"][:] == b"4").any()
    with netCDF4.Dataset(files[1]) as ds:
        assert "DEPH_CORRECTED" not in ds.variables and "PRES" in ds.variables  # the Argo-like month
    store = tmp_path / "p.zarr"
    assert main(["ingest", str(tmp_path / "p"), "--out", str(store), "--no-progress", "--report",
                 str(tmp_path / "r.json"), "--set", "ingest.source.kind=profiles", "--set",
                 "ingest.source.lon_convention=0..360", "--set", "cluster.local.n_workers=1"]) == 0
    assert json.loads((tmp_path / "r.json").read_text()) == []
    got = xr.open_zarr(store)
    truth = xr.open_mfdataset(ocean, combine="by_coords")["thetao"].values
    assert got.time.values.tolist() == xr.open_mfdataset(ocean).time.values.tolist()
    x = got.X.values[:, :5]
    both = np.isfinite(x) & np.isfinite(truth)
    error = np.abs(x - truth)[both]
    assert both.sum() > 2000 and (np.isfinite(x) & ~np.isfinite(truth)).sum() < 0.1 * both.sum()
    # A profile sits up to a cell's half-width (1 degree) from the centre the truth is drawn at.
    assert np.median(error) < 0.3 and error.max() < 2.0
    counts = got.X.sel(feature="thetao-count").values
    assert np.nanmin(counts) == 1 and np.nanmax(counts) >= 3


def test_without_quality_control_the_sample_is_visibly_wrong(tmp_path):
    path = write_profiles_sample(tmp_path, steps=1)[0]
    truth = xr.open_dataset(write_ocean_sample(tmp_path / "o", steps=1)[0])["thetao"].values
    errors = []
    for flags in (["1"], ["1", "4", "9"]):
        source = profiles_source("ingest.source.lon_convention=0..360", f"ingest.source.profiles.accepted_qc={flags}",
                                 f"ingest.source.profiles.accepted_profile_qc={flags}")
        errors.append(np.nanmax(np.abs(read_input(scan_input(str(path), source), source)[:, :5] - truth)))
    assert errors[0] < 2.0 < 3.0 < errors[1]


# --- the grid of a gridded reference -----------------------------------------------------------
def test_the_grid_of_the_reference_gives_the_same_cells_as_the_same_resolution(tmp_path):
    ocean = write_ocean_sample(tmp_path / "o", steps=1, resolution=10.0)[0]
    path = write_profiles_sample(tmp_path / "p", steps=1, floats=40)[0]
    by_reference = profiles_source(f"ingest.source.profiles.depth_from={ocean}",
                                   "ingest.source.profiles.resolution=null",
                                   "ingest.source.lon_convention=0..360")
    by_resolution = profiles_source("ingest.source.profiles.resolution=10", "ingest.source.lon_convention=0..360")
    first, second = scan_input(str(path), by_reference), scan_input(str(path), by_resolution)
    assert first.lat.tolist() == second.lat.tolist() and first.lon.tolist() == second.lon.tolist()
    np.testing.assert_array_equal(read_input(first, by_reference), read_input(second, by_resolution))
    with pytest.raises(ConfigError, match="resolution null takes the grid of depth_from"):
        profiles_source("ingest.source.profiles.resolution=null")


def test_profiles_fall_on_the_nearest_node_of_a_node_grid_reference(tmp_path):
    from sources_helpers import lat_lon_variables

    lat, lon = np.arange(-80.0, 90.1, 5.0), np.arange(0.0, 360.0, 5.0)  # nodes on whole degrees, like GLORYS
    reference = write_nc(tmp_path / "ref_20200101.nc", {
        **lat_lon_variables(lat, lon), "depth": (("depth",), np.array([0.0, 50.0]), {"positive": "down"}),
        "thetao": (("depth", "lat", "lon"), np.zeros((2, lat.size, lon.size), np.float32), {})})
    p_lat = np.array([90.0, 89.0, 87.4, -82.4, -82.6, 10.0, 10.0, 2.4, 2.6])
    p_lon = np.array([0.0, 2.0, -2.4, 10.0, 10.0, 177.6, -177.6, 357.6, -2.4])
    path = write_profiles(tmp_path / "p.nc", p_lat, p_lon, [[0.0, 50.0]] * 9, [[k, k] for k in range(1, 10)])
    source = profiles_source(f"ingest.source.profiles.depth_from={reference}", "ingest.source.profiles.resolution=null")
    info = scan_input(str(path), source)
    got = read_input(info, source)[0, 0]
    cell = lambda y, x: got[info.lat.tolist().index(y), info.lon.tolist().index(x)]  # noqa: E731
    assert cell(90.0, 0.0) == 1.5  # 90 and 89 N share the top row
    assert cell(85.0, 0.0) == 3.0 and cell(-80.0, 10.0) == 4.0  # -82.6 is off the grid (below -82.5)
    assert cell(10.0, -180.0) == 6.5  # both sides of the dateline
    assert cell(0.0, 0.0) == 8.0 and cell(5.0, 0.0) == 9.0  # 2.4 N rounds down, 2.6 N up; 357.6 E is 0
    assert np.nansum(got) == 1.5 + 3 + 4 + 6.5 + 8 + 9 and np.isfinite(got).sum() == 6


def test_the_profiles_sample_is_reproducible_and_varied(tmp_path):
    first = write_profiles_sample(tmp_path / "a", steps=1, floats=30, seed=3)[0]
    again = write_profiles_sample(tmp_path / "b", steps=1, floats=30, seed=3)[0]
    other = write_profiles_sample(tmp_path / "c", steps=1, floats=30, seed=4)[0]
    read = lambda path: netCDF4.Dataset(path)["POTM_CORRECTED"][:].filled(np.nan)  # noqa: E731
    np.testing.assert_array_equal(read(first), read(again))
    assert read(first).shape != read(other).shape or not np.array_equal(read(first), read(other), equal_nan=True)
    with netCDF4.Dataset(first) as ds:
        levels = np.isfinite(ds["DEPH_CORRECTED"][:].filled(np.nan)).sum(axis=1)
        assert levels.min() < 0.6 * levels.max()  # some profiles are much shallower than others
        assert (np.isfinite(ds["PRES"][:].filled(np.nan)).any(axis=1)).sum() >= 1  # pressure-only profiles


def test_qc_flags_from_the_command_line_are_characters():
    assert profiles_source("ingest.source.profiles.accepted_qc=[1, 2]").profiles.accepted_qc == ["1", "2"]
    with pytest.raises(ConfigError, match=r"accepted_qc: Value error, QC flags are single characters"):
        profiles_source("ingest.source.profiles.accepted_qc=[12]")


def test_a_dumped_profiles_config_loads_again(tmp_path):
    from satflow.config import dump_config

    config = load_config(None, ["ingest.source.kind=profiles", "ingest.source.profiles.depth_from=ref.nc",
                                "ingest.source.profiles.resolution=null"])
    (tmp_path / "c.yaml").write_text(dump_config(config))
    assert load_config(tmp_path / "c.yaml").ingest.source.profiles == config.ingest.source.profiles
    assert profiles_source().profiles.listed_depths == (0.5, 10.0, 50.0, 100.0, 200.0)


def test_a_crop_across_the_dateline_keeps_the_profiles_on_both_sides(tmp_path):
    path = write_profiles(tmp_path / "p.nc", [0.5, 0.5, 0.5], [179.5, -179.5, 0.0], [[0.0, 10.0]] * 3,
                          [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    source = profiles_source("ingest.source.profiles.resolution=1", "ingest.source.profiles.depths=[0]",
                             "ingest.source.crop={lat_min: -2, lat_max: 2, lon_min: 178, lon_max: -178}")
    info = scan_input(str(path), source)
    assert info.lon.tolist() == [178.5, 179.5, 180.5, 181.5] and info.lat.tolist() == [-1.5, -0.5, 0.5, 1.5]
    got = read_input(info, source)[0]
    np.testing.assert_array_equal(got[0, 2], [np.nan, 1.0, 2.0, np.nan])  # 0 E is cropped away
    assert np.nansum(got[1]) == 2.0  # one profile in each of two cells
