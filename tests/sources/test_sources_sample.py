"""Sample generators: file layout, reproducibility, swath gaps, orbit geometry, climatology."""

import netCDF4
import numpy as np
import pytest

from satflow.grid import cell_centres
from satflow.sources.options import SourceConfig
from satflow.sources.samples import orbits
from satflow.sources.gridded import read_file, scan_file
from satflow.sources.samples import (AMSUA_FILL, DEFAULT_SATELLITES, THETAO_FILL, write_amsua_sample,
                                    write_ocean_sample)

AUX = ("said", "siid", "fovn", "lsql", "saza", "soza", "hols", "hmsl", "solazi", "bearaz")


@pytest.fixture(scope="module")
def amsua(tmp_path_factory):
    """Two 2-degree files, read through the gridded reader."""
    paths = write_amsua_sample(tmp_path_factory.mktemp("amsua"), start="2020-01-01T18", steps=2, resolution=2.0)
    info = scan_file(paths[0], SourceConfig())
    return paths, info, read_file(info, SourceConfig())


def variable_bytes(path) -> dict[str, bytes]:
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        return {name: var[...].tobytes() for name, var in ds.variables.items()}


def test_amsua_files_look_like_the_product(amsua):
    paths, info, data = amsua
    assert [p.name for p in paths] == ["1bamua_20200101_t18.nc", "1bamua_20200102_t00.nc"]
    with netCDF4.Dataset(paths[0]) as ds:
        assert {k: len(v) for k, v in ds.dimensions.items()} == {"time": 1, "channel": 15, "lat": 90, "lon": 180}
        assert ds["tmbrs"].dimensions == ("time", "channel", "lat", "lon") and ds["tmbrs"].dtype == np.float32
        assert ds["tmbrs"]._FillValue == AMSUA_FILL and ds["tmbrs"].filters()["zlib"]
        assert all(ds[name].dimensions == ("time", "lat", "lon") for name in AUX)
        assert ds["time"].units == "seconds since 1970-01-01 00:00:00"
        assert ds["lat"][[0, -1]].tolist() == [-89.0, 89.0] and ds["lon"][[0, -1]].tolist() == [-179.0, 179.0]
    expected = tuple(f"tmbrs-{k}" for k in range(1, 16)) + tuple(f"channels-{k}" for k in range(1, 16)) + AUX
    assert info.features == expected and data.shape == (1, 40, 90, 180)
    assert info.times[0] == np.datetime64("2020-01-01T18")


def test_same_seed_same_values_other_seed_other_weather(tmp_path, amsua):
    again = write_amsua_sample(tmp_path / "a", start="2020-01-01T18", steps=2, resolution=2.0)
    other = write_amsua_sample(tmp_path / "b", start="2020-01-01T18", steps=2, resolution=2.0, seed=1)
    for mine, same, different in zip(amsua[0], again, other):
        assert variable_bytes(mine) == variable_bytes(same)
        differs = {k for k, v in variable_bytes(different).items() if v != variable_bytes(mine)[k]}
        assert {"tmbrs", "channels"} <= differs and "said" not in differs  # weather changes, orbits do not


def test_swath_gaps_at_one_step(amsua):
    _, info, data = amsua
    observed = np.isfinite(data[0, info.features.index("said")])
    weights = np.cos(np.radians(info.lat))[:, None] * np.ones(observed.shape)
    missing = 1.0 - (observed * weights).sum() / weights.sum()
    assert 0.20 < missing < 0.40
    # the masks agree: a cell observed by a satellite has a value in every working channel
    assert np.array_equal(np.isfinite(data[0, info.features.index("tmbrs-6")]), observed)
    assert np.array_equal(np.isfinite(data[0, :15]), np.isfinite(data[0, 15:30]))


def test_aux_fields_are_plausible(amsua):
    _, info, data = amsua
    field = {name: data[0, info.features.index(name)] for name in AUX + ("channels-6",)}
    ok = np.isfinite(field["said"])
    assert set(np.unique(field["said"][ok])) == {209.0, 3.0, 5.0}  # NOAA-18, MetOp-B, MetOp-C
    assert np.all(field["siid"][ok] == 570.0)
    assert set(np.unique(field["fovn"][ok])) == set(range(1, 31))
    assert np.nanmax(field["saza"]) < 61.0 and np.nanmin(field["saza"]) >= 0.0
    assert set(np.unique(field["lsql"][ok])) == {0.0, 1.0, 2.0}
    assert set(np.unique(field["hmsl"][ok])) == {854000.0, 817000.0}
    assert np.nanmin(field["soza"]) >= 0.0 and np.nanmax(field["soza"]) <= 180.0
    counts = field["channels-6"][ok]
    assert np.all(counts >= 1) and np.all(counts == np.round(counts)) and 8 < counts.mean() < 25


def test_brightness_temperature_climatology(amsua):
    _, info, data = amsua
    tb = {k: data[0, info.features.index(f"tmbrs-{k}")] for k in range(1, 16)}
    lsql = data[0, info.features.index("lsql")]
    tropics = np.abs(info.lat)[:, None] < 30
    mean = {k: np.nanmean(np.where(tropics, v, np.nan)) for k, v in tb.items()}
    assert mean[4] > mean[5] > mean[6] > mean[7] > mean[8] > mean[9]  # troposphere: colder with height
    assert mean[9] < mean[10] < mean[11] < mean[12] < mean[13] < mean[14]  # stratosphere: warmer
    # window channels: radiometrically cold sea (at 89 GHz humid tropical air hides most of it)
    for k, contrast in ((1, 60.0), (2, 60.0), (3, 20.0), (15, 1.0)):
        land, sea = np.nanmean(tb[k][tropics & (lsql == 0)]), np.nanmean(tb[k][tropics & (lsql == 1)])
        assert land - sea > contrast
    assert all(100.0 < np.nanmin(v) and np.nanmax(v) < 320.0 for v in tb.values())


def test_sun_synchronous_orbits():
    for sat in orbits.AMSUA_CONSTELLATION:
        assert 98.5 < np.degrees(sat.inclination_rad) < 99.0
        assert 100.5 < sat.period_s / 60.0 < 102.5
        assert 2100.0 < 2.0 * sat.half_swath_rad * orbits.EARTH_RADIUS_KM < 2400.0


@pytest.mark.parametrize("name", ["NOAA-18", "MetOp-B"])
def test_nadir_crosses_the_equator_at_the_node_local_times(name):
    sat = next(s for s in orbits.AMSUA_CONSTELLATION if s.name == name)
    lat, lon = cell_centres(-2, 2, 1.0), cell_centres(-180, 180, 0.5)
    centre = orbits.seconds_since_epoch(np.datetime64("2020-06-01T12"))
    seen = orbits.observe(lat, lon, centre, 3 * 3600.0, (sat,))
    nadir = seen.observed & (np.abs(seen.scan_angle_deg) < 1.0)
    lon2 = np.broadcast_to(lon, nadir.shape)
    local = np.mod(seen.time_s[nadir] / 3600.0 + lon2[nadir] / 15.0, 24.0)
    ascending, descending = sat.ltan_hours, sat.ltan_hours - 12.0
    off = np.minimum(np.abs(local - ascending), np.abs(local - descending))
    assert nadir.sum() >= 8 and off.max() < 0.1  # hours
    assert np.all(np.abs(seen.time_s[seen.observed] - centre) <= 3 * 3600.0)


def test_full_constellation_covers_nearly_everything():
    lat, lon = cell_centres(-90, 90, 4.0), cell_centres(-180, 180, 4.0)
    seen = orbits.observe(lat, lon, orbits.seconds_since_epoch(np.datetime64("2020-01-01")), 3 * 3600.0)
    assert seen.observed.mean() > 0.97
    assert len(DEFAULT_SATELLITES) == 3


def test_unknown_satellite_and_bad_start(tmp_path):
    with pytest.raises(ValueError, match="unknown satellite"):
        write_amsua_sample(tmp_path, steps=1, satellites=("Sputnik",))
    with pytest.raises(ValueError, match="not a date"):
        write_amsua_sample(tmp_path, start="soon", steps=1)


def test_ocean_sample(tmp_path):
    paths = write_ocean_sample(tmp_path, start="2020-11-01", steps=3, resolution=4.0)
    assert [p.name for p in paths] == ["thetao_202011.nc", "thetao_202012.nc", "thetao_202101.nc"]
    with netCDF4.Dataset(paths[0]) as ds:
        var = ds["thetao"]
        assert var.dtype == np.int16 and var._FillValue == THETAO_FILL and var.units == "degrees_C"
        assert ds["depth"].positive == "down" and ds["lon"][0] == 2.0  # 0..360 like many ocean models
    config = SourceConfig(convert_units={"thetao": "K"})
    info = scan_file(paths[1], config)
    data = read_file(info, config)
    assert info.features == ("thetao-d1", "thetao-d2", "thetao-d3", "thetao-d4", "thetao-d5")
    assert info.times[0] == np.datetime64("2020-12-01") and info.units == ("K",) * 5
    missing = np.isnan(data[0]).mean(axis=(1, 2))
    assert 0.25 < missing[0] < 0.40 and np.all(np.diff(missing) >= 0)  # land, then shelves at depth
    tropics = np.abs(info.lat) < 20
    surface, deep = np.nanmean(data[0, 0][tropics]), np.nanmean(data[0, 4][tropics])
    assert 299.0 < surface < 303.0 and surface - deep > 8.0  # warm mixed layer over a thermocline
    assert np.nanmin(data) >= 271.2


def test_ocean_sample_is_reproducible(tmp_path):
    first = write_ocean_sample(tmp_path / "a", steps=1, resolution=6.0, seed=4)[0]
    second = write_ocean_sample(tmp_path / "b", steps=1, resolution=6.0, seed=4)[0]
    assert variable_bytes(first) == variable_bytes(second)
