"""A corpus of broken files: each raises SourceError naming the file, the reason and a remedy."""

import pickle

import numpy as np
import pytest
from sources_helpers import lat_lon_variables, source, time_variable, write_nc

from satflow.sources.gridded import SourceError, read_file, scan_file


def _valid(path):
    variables = {**lat_lon_variables(), **time_variable([0.0]),
                 "x": (("time", "lat", "lon"), np.arange(12, dtype=np.float32).reshape(1, 3, 4), {})}
    return write_nc(path, variables)


def truncated(path):
    data = _valid(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def empty(path):
    path.write_bytes(b"")


def all_fill(path):
    variables = {**lat_lon_variables(), **time_variable([0.0]),
                 "x": (("time", "lat", "lon"), np.full((1, 3, 4), -999.0, np.float32),
                       {"_FillValue": np.float32(-999)})}
    write_nc(path, variables)


def no_lat_lon(path):
    write_nc(path, {**time_variable([0.0, 1.0]), "index": (("time",), np.ones(2, np.float32), {})})


def curvilinear(path):
    write_nc(path, {
        "lat": (("y", "x"), np.zeros((3, 4)), {"standard_name": "latitude"}),
        "lon": (("y", "x"), np.zeros((3, 4)), {"standard_name": "longitude"}),
        "sst": (("y", "x"), np.ones((3, 4), np.float32), {"coordinates": "lat lon"}),
    })


def bad_time_units(path):
    write_nc(path, {**lat_lon_variables(), **time_variable([0.0], units="days since the big bang"),
                    "x": (("time", "lat", "lon"), np.ones((1, 3, 4), np.float32), {})})


def time_without_units(path):
    write_nc(path, {**lat_lon_variables(), "time": (("time",), np.array([0.0, 1.0]), {}),
                    "x": (("time", "lat", "lon"), np.ones((2, 3, 4), np.float32), {})})


def two_grids(path):
    write_nc(path, {**lat_lon_variables(),
                    "lat2": (("lat2",), np.array([1.0, 2.0]), {"standard_name": "latitude"}),
                    "a": (("lat", "lon"), np.ones((3, 4), np.float32), {}),
                    "b": (("lat2", "lon"), np.ones((2, 4), np.float32), {})})


def two_extra_dims(path):
    write_nc(path, {**lat_lon_variables(), **time_variable([0.0]),
                    "x": (("time", "band", "level", "lat", "lon"), np.ones((1, 2, 2, 3, 4), np.float32), {})})


# (name, builder, settings, text the reason must contain)
CORPUS = [
    ("truncated.nc", truncated, {}, "cannot open as NetCDF"),
    ("random.nc", random_bytes, {}, "cannot open as NetCDF"),
    ("empty.nc", empty, {}, "cannot open as NetCDF"),
    ("missing_variable.nc", _valid, {"variables": ["tmbrs"]}, "variable 'tmbrs' not found"),
    ("all_fill.nc", all_fill, {}, "all values are fill"),
    ("no_lat_lon.nc", no_lat_lon, {}, "no 1-D latitude/longitude coordinates"),
    ("curvilinear.nc", curvilinear, {}, "latitude/longitude are 2-D"),
    ("bad_time.nc", bad_time_units, {}, "cannot decode time 'time'"),
    ("climatology.nc", time_without_units, {}, "time dimension 'time' (2 steps) has no coordinate"),
    ("two_grids.nc", two_grids, {}, "variables lie on different grids"),
    ("levels.nc", two_extra_dims, {"variables": ["x"]}, "has 2 dimensions besides time/lat/lon"),
    ("outside_crop.nc", _valid, {"crop": {"lat_min": 50, "lat_max": 60}}, "selects no grid cell"),
]


@pytest.mark.parametrize("name, build, settings, reason", CORPUS, ids=[c[0] for c in CORPUS])
def test_broken_file_raises_source_error(tmp_path, name, build, settings, reason):
    path = tmp_path / name
    build(path)
    config = source(**settings)
    with pytest.raises(SourceError) as caught:
        read_file(scan_file(path, config), config)
    err = caught.value
    assert err.path == str(path)
    assert reason in err.reason
    assert str(err) == f"{path}: {err.reason}; {err.hint}"
    assert err.hint  # always says what to do


def test_scan_reads_no_data_so_all_fill_is_found_by_read(tmp_path):
    all_fill(tmp_path / "fill.nc")
    info = scan_file(tmp_path / "fill.nc", source())
    assert info.features == ("x",)
    with pytest.raises(SourceError, match="fill.nc: all values are fill; check its _FillValue"):
        read_file(info, source())


def test_missing_variable_lists_what_is_there(tmp_path):
    _valid(tmp_path / "ok.nc")
    with pytest.raises(SourceError, match="gridded variables in this file: x; check source.variables"):
        scan_file(tmp_path / "ok.nc", source(variables=["tmbrs"]))


def test_nonexistent_path(tmp_path):
    with pytest.raises(SourceError, match="no such file; check the path"):
        scan_file(tmp_path / "nope.nc", source())


def test_file_broken_after_the_scan(tmp_path):
    path = _valid(tmp_path / "later.nc")
    info = scan_file(path, source())
    random_bytes(path)
    with pytest.raises(SourceError, match="cannot open as NetCDF"):
        read_file(info, source())


def test_source_error_survives_pickling():
    err = pickle.loads(pickle.dumps(SourceError("/data/a.nc", "all values are fill", "remove it")))
    assert (err.path, err.reason, err.hint) == ("/data/a.nc", "all values are fill", "remove it")
    assert str(err) == "/data/a.nc: all values are fill; remove it"


def test_requesting_a_non_gridded_variable(tmp_path):
    variables = {**lat_lon_variables(), **time_variable([0.0, 1.0]),
                 "x": (("time", "lat", "lon"), np.ones((2, 3, 4), np.float32), {}),
                 "index": (("time",), np.ones(2, np.float32), {})}
    path = write_nc(tmp_path / "mixed.nc", variables)
    with pytest.raises(SourceError, match=r"variable 'index' is not on a lat/lon grid \(dimensions \('time',\)\): "
                                          "it lacks a latitude or longitude dimension; choose a gridded variable"):
        scan_file(path, source(variables=["index"]))
    assert scan_file(path, source(variables=["x", "x"])).features == ("x",)
