"""Auxiliary products (ingest.aux_products): the pairing plan, resampling onto the primary grid, and the
store they land in: OSTIA sea-surface temperature next to the ocean sample, small synthetic files at
chosen times, a broken auxiliary file, a resumed ingest and a primary local domain."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr
import zarr
from sources_helpers import lat_lon_variables, time_variable, write_nc

from satflow.cli import main as cli_main
from satflow.config import ConfigError, load_config
from satflow.ingest import open_archive, run_ingest, scan_and_plan
from satflow.sources.auxiliary import (ALL_SCENES, SINGLE_SCENE, infer_dt_hours, pair_scenes, resample_lat_lon,
                                       time_hours)
from satflow.sources.base import read_input, scan_input
from satflow.sources.samples import write_ocean_sample


# --- pairing: exact pairs at chosen times ------------------------------------------------------------
def test_single_scene_goes_to_the_nearest_primary_time_within_dt():
    primary = np.array([0.0, 6.0, 12.0, 18.0])
    # 1 -> 0; 5 -> 6; 11.5 -> 12; 30 is 12 h from 18 (beyond dt 6): unused; nothing reaches 18.
    assert pair_scenes(primary, np.array([1.0, 5.0, 11.5, 30.0]), SINGLE_SCENE, 6.0).tolist() == [0, 1, 2, -1]
    # dt is inclusive: 24 is exactly 6 h from 18.
    assert pair_scenes(primary, np.array([24.0]), SINGLE_SCENE, 6.0).tolist() == [-1, -1, -1, 0]


def test_single_scene_ties_and_claims():
    primary = np.array([0.0, 6.0])
    # An auxiliary time exactly between two primary times goes to the earlier one.
    assert pair_scenes(primary, np.array([3.0]), SINGLE_SCENE, 6.0).tolist() == [0, -1]
    # Two auxiliary times claim t=0 (their nearest): the nearer wins, the other is not moved to t=6.
    assert pair_scenes(primary, np.array([-2.0, 1.0]), SINGLE_SCENE, 6.0).tolist() == [1, -1]
    # Equally near claims: the earlier auxiliary time wins (given out of order: indices refer to the input).
    assert pair_scenes(primary, np.array([1.0, -1.0]), SINGLE_SCENE, 6.0).tolist() == [1, -1]


def test_all_scenes_take_the_nearest_aux_time_within_half_dt():
    primary = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.5])
    aux = np.array([0.4, 3.0])
    # dt 2 -> 1 h each side: 2 is 1.6 from 0.4 but exactly 1.0 from 3 (inclusive); 5.5 is 2.5 from 3.
    assert pair_scenes(primary, aux, ALL_SCENES, 2.0).tolist() == [0, 0, 1, 1, 1, -1]
    # Equally near to two auxiliary times: the earlier one.
    assert pair_scenes(np.array([1.7]), aux, ALL_SCENES, 4.0).tolist() == [0]


def test_dt_is_inferred_as_the_smallest_span_between_aux_times():
    assert infer_dt_hours(np.array([0.0, 2.0, 2.5, 2.5, 6.0])) == 0.5  # a repeated time is no span
    assert infer_dt_hours(np.array([3.0])) is None


def test_times_pair_in_their_own_calendar():
    import cftime

    days = [cftime.datetime(2000, 2, 29, calendar="360_day"), cftime.datetime(2000, 2, 30, calendar="360_day"),
            cftime.datetime(2000, 3, 1, calendar="360_day")]
    np.testing.assert_array_equal(np.diff(time_hours(np.array(days, dtype=object))), [24.0, 24.0])
    primary = time_hours(np.array(days, dtype=object))
    aux = time_hours(np.array([cftime.datetime(2000, 2, 30, 18, calendar="360_day")], dtype=object))
    assert pair_scenes(primary, aux, SINGLE_SCENE, 12.0).tolist() == [-1, -1, 0]  # Feb 30 18:00 -> Mar 1


# --- resampling onto a primary lat/lon grid ----------------------------------------------------------
def test_bilinear_reproduces_a_linear_field_and_never_lets_invalid_cells_in():
    lat, lon = np.arange(-10.0, 10.5, 1.0), np.arange(0.0, 20.5, 1.0)
    field = (2.0 * lat[:, None] + 0.5 * lon[None, :]).astype(np.float32)[None, None]
    target_lat, target_lon = np.arange(-9.75, 10.0, 0.5), np.arange(0.25, 20.0, 0.5)
    out = resample_lat_lon(field, lat, lon, target_lat, target_lon, "bilinear")[0, 0]
    np.testing.assert_allclose(out, 2.0 * target_lat[:, None] + 0.5 * target_lon[None, :], atol=1e-4)
    broken = field.copy()
    broken[0, 0, 5, 7] = np.nan
    out = resample_lat_lon(broken, lat, lon, target_lat, target_lon, "bilinear")[0, 0]
    near = (np.abs(target_lat[:, None] - lat[5]) < 1) & (np.abs(target_lon[None, :] - lon[7]) < 1)
    np.testing.assert_array_equal(np.isfinite(out), ~near)
    nearest = resample_lat_lon(broken, lat, lon, target_lat, target_lon, "nearest")[0, 0]
    assert np.isnan(nearest).sum() == 4  # the four target cells inside the invalid input cell


def test_cells_beyond_the_aux_grid_are_invalid_and_a_global_grid_wraps():
    lat, lon = np.arange(-5.0, 5.5, 1.0), np.arange(0.0, 360.0, 10.0)  # global in longitude
    field = np.cos(np.radians(lon))[None, None, None, :].repeat(lat.size, axis=2).astype(np.float32)
    target_lon = np.array([-175.0, -5.0, 5.0, 175.0])  # -5 lies between 350 and the wrapped 360
    out = resample_lat_lon(field, lat, lon, np.array([-6.0, 0.0, 5.0]), target_lon, "bilinear")[0, 0]
    assert np.isnan(out[0]).all() and np.isfinite(out[1:]).all()
    expected = (np.cos(np.radians(350.0)) + 1.0) / 2  # halfway between the last column and the first
    assert out[1, 1] == pytest.approx(expected, abs=1e-6)
    nearest = resample_lat_lon(field, lat, lon, np.array([-5.6, -5.4, 0.0]), target_lon, "nearest")[0, 0]
    assert np.isnan(nearest[0]).all() and np.isfinite(nearest[1:]).all()  # -5.4 lies in the first row's cell


# --- synthetic primary and auxiliary files through the ingest --------------------------------------------
PRIMARY_LAT, PRIMARY_LON = np.arange(-8.0, 8.5, 4.0), np.arange(0.0, 30.0, 5.0)
AUX_LAT, AUX_LON = np.arange(-10.0, 10.5, 2.0), np.arange(-5.0, 35.5, 2.5)


def aux_field(lat, lon, hour):
    return (300.0 + hour + 0.5 * lat[:, None] + 0.1 * lon[None, :]).astype(np.float32)


def write_grid(path, hours, values, lat, lon, name, attrs=None):
    return write_nc(path, {**lat_lon_variables(lat, lon), **time_variable(hours),
                           name: (("time", "lat", "lon"), np.asarray(values, np.float32), attrs or {})})


@pytest.fixture
def synthetic(tmp_path):
    """Primary steps at 0, 6, 12, 18 h (one file each); auxiliary scenes at 1, 5.5 and 13 h in one file and
    21 h in another, on a wider, finer grid with a linear field (bilinear reproduces it exactly)."""
    primary = []
    for hour in (0, 6, 12, 18):
        values = np.full((1, PRIMARY_LAT.size, PRIMARY_LON.size), 10.0 + hour, np.float32)
        primary.append(write_grid(tmp_path / f"p_{hour:02d}.nc", [hour], values, PRIMARY_LAT, PRIMARY_LON, "tb"))
    aux_hours = [1.0, 5.5, 13.0]
    write_grid(tmp_path / "aux_a.nc", aux_hours, [aux_field(AUX_LAT, AUX_LON, h) for h in aux_hours],
               AUX_LAT, AUX_LON, "cth")
    write_grid(tmp_path / "aux_b.nc", [21.0], [aux_field(AUX_LAT, AUX_LON, 21.0)], AUX_LAT, AUX_LON, "cth")
    return tmp_path


def aux_overrides(inputs, **settings) -> list[str]:
    product = {"inputs": [str(p) for p in inputs], **settings}
    return ["ingest.chunks.time=2", f"ingest.aux_products={json.dumps({'cloud': product})}"]


def test_single_scene_strategy_through_the_ingest(synthetic):
    config = load_config(None, aux_overrides([synthetic / "aux_*.nc"], dt_aux="PT3H")).ingest
    report = run_ingest([str(synthetic / "p_*.nc")], synthetic / "s.zarr", config)
    assert not report.skipped
    ds = xr.open_zarr(synthetic / "s.zarr")
    assert [str(f) for f in ds["feature"].values] == ["tb", "cloud/cth"]
    # 1 h -> 0 h; 5.5 h -> 6 h; 13 h -> 12 h; 21 h -> 18 h (3 h: dt is inclusive).
    hours = (ds["aux_time"].values[:, 0] - np.datetime64("2020-01-01")) / np.timedelta64(1, "h")
    np.testing.assert_array_equal(hours, [1.0, 5.5, 13.0, 21.0])
    assert [os.path.basename(f) for f in ds["aux_source_file"].values[:, 0]] == ["aux_a.nc"] * 3 + ["aux_b.nc"]
    for t, hour in enumerate(hours):
        expected = aux_field(PRIMARY_LAT, PRIMARY_LON, hour)
        np.testing.assert_allclose(ds["X"].values[t, 1], expected, rtol=0, atol=2e-4)
    np.testing.assert_array_equal(ds["X"].values[:, 0, 0, 0], [10.0, 16.0, 22.0, 28.0])  # primary untouched
    assert ds["units"].values.tolist() == ["", ""]


def test_all_scenes_strategy_and_unmapped_steps_are_masked(synthetic):
    # dt inferred: 4.5 h (1 -> 5.5); 2.25 h each side: 0 <- 1; 6 <- 5.5; 12 <- 13; 18: 21 is 3 h away.
    config = load_config(None, aux_overrides([synthetic / "aux_*.nc"],
                                             scene_mapping_strategy="all_scenes_within_dt_aux")).ingest
    plan = scan_and_plan([str(synthetic / "p_*.nc")], synthetic / "s.zarr", config)
    assert plan.aux[0].dt_hours == 4.5 and plan.aux[0].dt_inferred
    assert "dt_aux 4.5 h (inferred): 3 of 4 step(s) mapped" in plan.describe()
    run_ingest([str(synthetic / "p_*.nc")], synthetic / "s.zarr", config)
    ds = xr.open_zarr(synthetic / "s.zarr")
    assert ds["aux_source_file"].values[3, 0] == "" and np.isnat(ds["aux_time"].values[3, 0])
    assert not ds["M"].values[3, 1].any() and ds["M"].values[3, 0].all()
    assert ds["M"].values[:3, 1].all()
    assert int(ds["count"].sel(feature="cloud/cth")) == 3 * PRIMARY_LAT.size * PRIMARY_LON.size


def test_one_aux_time_without_dt_is_a_clear_error(synthetic):
    config = load_config(None, aux_overrides([synthetic / "aux_b.nc"])).ingest
    with pytest.raises(ValueError, match=r"ingest.aux_products.cloud: cannot infer dt_aux from 1 auxiliary "
                                         r"time\(s\); set aux_products.cloud.dt_aux"):
        scan_and_plan([str(synthetic / "p_*.nc")], None, config)


def test_a_broken_aux_file_is_reported_and_its_steps_stay_invalid(synthetic):
    (synthetic / "aux_garbage.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # unreadable: skipped at scan
    fill = {"_FillValue": np.float32(-999.0)}
    write_grid(synthetic / "aux_b.nc", [21.0], np.full((1, AUX_LAT.size, AUX_LON.size), -999.0), AUX_LAT, AUX_LON,
               "cth", fill)  # scans fine, all fill: fails when its step is read
    config = load_config(None, aux_overrides([synthetic / "aux_*.nc"], dt_aux=3)).ingest
    report = run_ingest([str(synthetic / "p_*.nc")], synthetic / "s.zarr", config)
    reasons = {os.path.basename(s.path): s.reason for s in report.skipped}
    assert set(reasons) == {"aux_garbage.nc", "aux_b.nc"}
    assert reasons["aux_b.nc"] == "auxiliary product cloud: all values are fill"
    assert reasons["aux_garbage.nc"].startswith("auxiliary product cloud: ")
    ds = xr.open_zarr(synthetic / "s.zarr")
    assert ds["aux_source_file"].values[3, 0] == "" and not ds["M"].values[3, 1].any()
    assert ds["M"].values[:3, 1].all()


def test_an_aux_file_in_another_calendar_is_skipped_with_the_reason(synthetic):
    write_nc(synthetic / "aux_noleap.nc", {**lat_lon_variables(AUX_LAT, AUX_LON),
                                          **time_variable([7.0], calendar="noleap"),
                                          "cth": (("time", "lat", "lon"), aux_field(AUX_LAT, AUX_LON, 7.0)[None], {})})
    config = load_config(None, aux_overrides([synthetic / "aux_a.nc", synthetic / "aux_noleap.nc"], dt_aux=3)).ingest
    plan = scan_and_plan([str(synthetic / "p_*.nc")], None, config)
    reasons = {os.path.basename(s.path): s.reason for s in plan.skipped}
    assert reasons == {"aux_noleap.nc": "auxiliary product cloud: calendar noleap differs from the primary store's "
                                        "(datetime64); times of two calendars cannot be paired"}
    assert [s.t for s in plan.aux[0].slots] == [0, 1, 2]


def test_rerun_resumes_and_rewrites_only_unfinished_steps(synthetic):
    config = load_config(None, aux_overrides([synthetic / "aux_*.nc"], dt_aux="PT3H")).ingest
    store = synthetic / "s.zarr"
    run_ingest([str(synthetic / "p_*.nc")], store, config)
    before = xr.open_zarr(store).load()
    group = zarr.open_group(str(store), mode="r+")
    group["X"][2:4] = 0.0  # a task killed midway: its steps hold junk and are not flagged
    group["ingested"][2:4] = 0
    group["aux_source_file"][2:4] = ""
    plan = scan_and_plan([str(synthetic / "p_*.nc")], store, config)
    assert plan.mode == "resume" and [(r.t0, r.t1) for r in plan.regions] == [(2, 4)]
    assert [s.t for r in plan.regions for s in r.aux] == [2, 3]
    run_ingest([str(synthetic / "p_*.nc")], store, config)
    after = xr.open_zarr(store).load()
    xr.testing.assert_identical(after.drop_attrs(), before.drop_attrs())
    assert after.attrs["satflow_fingerprint"] == before.attrs["satflow_fingerprint"]
    changed = load_config(None, aux_overrides([synthetic / "aux_*.nc"], dt_aux="PT2H")).ingest
    with pytest.raises(ValueError, match=r"aux_products.cloud: .*\"dt_aux\": \"PT3H\".* in the store"):
        scan_and_plan([str(synthetic / "p_*.nc")], store, changed)


def test_append_never_reuses_a_scene_already_in_the_store(synthetic):
    """9.2 h fills 6 h first (its nearest then); once 12 h is appended it is nearer to 12 h, but it is taken."""
    write_grid(synthetic / "aux_c.nc", [1.0, 9.2], [aux_field(AUX_LAT, AUX_LON, h) for h in (1.0, 9.2)],
               AUX_LAT, AUX_LON, "cth")
    config = load_config(None, aux_overrides([synthetic / "aux_c.nc"], dt_aux="PT4H")).ingest
    store = synthetic / "s.zarr"
    run_ingest([str(synthetic / "p_00.nc"), str(synthetic / "p_06.nc")], store, config)
    report = run_ingest([str(synthetic / "p_12.nc")], store, config, append=True)
    assert report.time_steps == 3
    ds = xr.open_zarr(store)
    hours = (ds["aux_time"].values[:, 0] - np.datetime64("2020-01-01")) / np.timedelta64(1, "h")
    np.testing.assert_array_equal(hours[:2], [1.0, 9.2])
    assert np.isnan(hours[2]) and ds["aux_source_file"].values[2, 0] == "" and not ds["M"].values[2, 1].any()
    # The same appended step in a store ingested in one go takes 9.2 h (nearest to 12 h); 6 h then has none.
    run_ingest([str(synthetic / f"p_{h:02d}.nc") for h in (0, 6, 12)], synthetic / "whole.zarr", config)
    whole = xr.open_zarr(synthetic / "whole.zarr")
    np.testing.assert_array_equal(np.isnat(whole["aux_time"].values[:, 0]), [False, True, False])


def test_open_archive_carries_the_aux_features_and_their_provenance(synthetic):
    config = load_config(None, aux_overrides([synthetic / "aux_*.nc"], dt_aux="PT3H")).ingest
    ds = open_archive(str(synthetic / "p_*.nc"), config)
    run_ingest([str(synthetic / "p_*.nc")], synthetic / "s.zarr", config)
    stored = xr.open_zarr(synthetic / "s.zarr")
    np.testing.assert_array_equal(ds["X"].values, stored["X"].values)
    np.testing.assert_array_equal(ds["aux_time"].values, stored["aux_time"].values)
    np.testing.assert_array_equal(ds["aux_source_file"].values, stored["aux_source_file"].values)


# --- a primary local domain: the product is regridded onto it ---------------------------------------------
DOMAIN = {"central_latitude": 0.0, "central_longitude": 15.0, "l_zonal": 1_000_000.0, "l_meridional": 800_000.0,
          "resolution": 100_000.0}


def test_on_a_primary_domain_the_aux_product_is_regridded_onto_it(synthetic):
    overrides = ["ingest.source.kind=regrid", f"ingest.source.domain={json.dumps(DOMAIN)}",
                 *aux_overrides([synthetic / "aux_a.nc"], dt_aux="PT3H")]
    config = load_config(None, overrides).ingest
    aux_source = config.aux_products["cloud"].source
    assert aux_source.kind == "regrid" and aux_source.domain == config.source.domain
    run_ingest([str(synthetic / "p_*.nc")], synthetic / "d.zarr", config)
    ds = xr.open_zarr(synthetic / "d.zarr")
    assert ds["crs"].attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    direct = read_input(scan_input(str(synthetic / "aux_a.nc"), aux_source), aux_source, steps=[0, 1, 2])
    np.testing.assert_array_equal(ds["X"].values[:3, 1], direct[:, 0])
    assert not ds["M"].values[3, 1].any()  # nothing within 3 h of 18 h in aux_a.nc


@pytest.mark.parametrize(("overrides", "message"), [
    ([f"ingest.aux_products={json.dumps({'1cloud': {'inputs': ['x.nc']}})}"],
     "ingest: Value error, aux_products.1cloud: the name must be letters, digits and '_'"),
    ([f"ingest.aux_products={json.dumps({'cloud': {'inputs': ['x.nc'], 'source': {'kind': 'regrid', 'domain': DOMAIN}}})}"],
     "ingest: Value error, aux_products.cloud.source: kind regrid targets a local domain, but the primary store is on "
     "a lat/lon grid: use kind gridded"),
    (["ingest.source.kind=regrid", f"ingest.source.domain={json.dumps(DOMAIN)}",
      f"ingest.aux_products={json.dumps({'cloud': {'inputs': ['x.nc'], 'source': {'kind': 'gridded'}}})}"],
     "ingest: Value error, aux_products.cloud.source: the primary store is on a local domain, so the auxiliary "
     "product is regridded onto that domain: use kind regrid"),
    ([f"ingest.aux_products={json.dumps({'cloud': {'inputs': ['x.nc'], 'dt_aux': 'P1M'}})}"],
     "ingest.aux_products.cloud.dt_aux: Value error, 'P1M' is not an ISO 8601 duration such as PT30M, PT1H or P1D, "
     "nor a number of hours (months and years have no fixed length: give days, e.g. P30D)"),
    ([f"ingest.aux_products={json.dumps({'cloud': {'inputs': ['x.nc'], 'scene_mapping_strategy': 'nearest'}})}"],
     "ingest.aux_products.cloud.scene_mapping_strategy: Input should be 'single_scene_per_aux_time' or "
     "'all_scenes_within_dt_aux'"),
    ([f"ingest.aux_products={json.dumps({'cloud': {'source': {}}})}"],
     "ingest.aux_products.cloud.inputs: Field required"),
])
def test_aux_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value)


# --- the real OSTIA file next to the ocean sample, through `satflow ingest --config` -------------------------
iris_sample_data = pytest.importorskip("iris_sample_data")
OSTIA = os.path.join(iris_sample_data.path, "ostia_monthly.nc")


@pytest.fixture(scope="module")
def ostia_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ostia")
    write_ocean_sample(root / "ocean", start="2007-01", steps=4, resolution=2.0, seed=1)
    config = root / "satflow.yaml"
    config.write_text(f"""
ingest:
  source: {{convert_units: {{thetao: K}}}}
  aux_products:
    ostia:
      inputs: [{OSTIA}]
      scene_mapping_strategy: all_scenes_within_dt_aux
      dt_aux: P31D
""")
    store = root / "ocean.zarr"
    assert cli_main(["ingest", str(root / "ocean" / "*.nc"), "--out", str(store), "--config", str(config),
                     "--no-progress", "--set", "ingest.chunks.time=2"]) == 0
    return store


def test_ostia_months_pair_with_the_ocean_months(ostia_store):
    ds = xr.open_zarr(ostia_store)
    assert [str(f) for f in ds["feature"].values][-1] == "ostia/surface_temperature"
    assert ds["units"].values[-1] == "K"
    # Primary months start on the 1st; OSTIA's are centred mid-month. Within 15.5 days: Jan 1 is 15.5 days after
    # Dec 16 12:00 and before Jan 16 12:00 (the earlier wins), Feb 1 is 14 days before Feb 15, Mar 1 15.5 days
    # before Mar 16 12:00 (Feb 15 is 14 days before: nearer), Apr 1 15 days before Apr 16.
    expected = np.array(["2006-12-16T12", "2007-02-15", "2007-02-15", "2007-04-16"], "datetime64[ns]")
    np.testing.assert_array_equal(ds["aux_time"].values[:, 0], expected)
    assert all(f == OSTIA for f in ds["aux_source_file"].values[:, 0])


def test_ostia_values_are_its_bilinear_interpolation_with_its_land_mask(ostia_store):
    ds = xr.open_zarr(ostia_store)
    ostia = xr.open_dataset(OSTIA)["surface_temperature"].sel(time=np.datetime64("2007-02-15"))
    lat, lon = ds["lat"].values, ds["lon"].values
    # An independent reference: xarray's linear interpolation, on OSTIA's 0..360 longitudes, away from its seam.
    inner = (lon > 2) & (lon < 358) | (lon < -2)
    reference_lat = np.where(lat == -5.0, float(ostia["latitude"][0]), lat)  # OSTIA stores -5 as -4.9999924
    reference = ostia.interp(latitude=reference_lat, longitude=np.mod(lon[inner], 360.0), method="linear").values
    stored = ds["X"].sel(feature="ostia/surface_temperature").values[1][:, inner]
    valid = np.isfinite(stored)
    assert not (valid & ~np.isfinite(reference)).any()  # no land (fill) value leaks into a valid cell
    np.testing.assert_allclose(stored[valid], reference[valid], rtol=0, atol=1e-3)
    # Stricter than scipy in one case: a cell on an OSTIA column (125 E, 95 E) with land in the next column is
    # invalid here, as in the regrid source (a NaN corner invalidates a cell even at zero weight).
    stricter = np.isfinite(reference) & ~valid
    on_a_column = np.isin(np.mod(lon[inner], 360.0), np.round(ostia["longitude"].values, 3))
    assert stricter.sum() == 2 and on_a_column[np.nonzero(stricter)[1]].all()
    valid_rows = lat[np.isfinite(stored).any(axis=1)]
    np.testing.assert_array_equal(valid_rows, [-5.0, -3.0, -1.0, 1.0, 3.0])  # OSTIA's band, -5 at -4.9999924
    assert (ds["M"].values == np.isfinite(ds["X"].values)).all()
