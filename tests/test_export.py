"""`satflow export`: NPZ and CF NetCDF files hold exactly what the store holds."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from satflow.cli import main as cli_main
from satflow.export import cf_variable_name, export_netcdf, export_npz
from satflow.store import StoreError, open_store

TIMES = np.datetime64("2020-01-01") + np.arange(4) * np.timedelta64(6, "h")


def test_npz_holds_the_store(tiny_store, tmp_path):
    path, values = tiny_store
    out = export_npz(path, tmp_path / "all.npz")
    with np.load(out, allow_pickle=False) as npz:  # no object arrays anywhere
        assert sorted(npz.files) == ["M", "X", "feature_names", "lat", "lon", "mean", "std", "time"]
        assert npz["X"].dtype == np.float32 and npz["X"].shape == (4, 3, 20, 30)
        np.testing.assert_array_equal(npz["X"], values)
        assert npz["M"].dtype == np.uint8
        np.testing.assert_array_equal(npz["M"], np.isfinite(values))
        assert npz["feature_names"].tolist() == ["a-1", "a-2", "b"]
        np.testing.assert_array_equal(npz["lat"], np.linspace(-9.5, 9.5, 20))
        np.testing.assert_array_equal(npz["lon"], np.linspace(0.5, 29.5, 30))
        np.testing.assert_array_equal(npz["time"], TIMES.astype("datetime64[ns]"))
        store = open_store(path)
        np.testing.assert_array_equal(npz["mean"], store["mean"].values.astype(np.float32))
        np.testing.assert_array_equal(npz["std"], store["std"].values.astype(np.float32))
    assert not (tmp_path / "all.npz.partial").exists()


def test_npz_time_range_and_features(tiny_store, tmp_path):
    path, values = tiny_store
    out = export_npz(path, tmp_path / "slice.npz", time_start="2020-01-01T06:00", time_end="2020-01-01T12:00",
                     features=["b", "a-1"])
    with np.load(out, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["X"], values[1:3][:, [2, 0]])
        np.testing.assert_array_equal(npz["time"], TIMES[1:3].astype("datetime64[ns]"))
        assert npz["feature_names"].tolist() == ["b", "a-1"]
    # A date as the end includes that whole day.
    with np.load(export_npz(path, tmp_path / "day.npz", time_end="2020-01-01"), allow_pickle=False) as npz:
        assert npz["X"].shape[0] == 4


def test_npz_refuses_over_budget(tiny_store, tmp_path):
    path, _ = tiny_store
    # One step is 3 features x 20 x 30 x 5 bytes = 9000 bytes.
    with pytest.raises(ValueError) as err:
        export_npz(path, tmp_path / "big.npz", max_bytes=20_000)
    message = str(err.value)
    assert ("exporting 4 time steps x 3 features x 20 x 30 to NPZ needs 35.2 KiB in memory (X float32 + M uint8), "
            "over the 19.5 KiB budget") in message
    assert "at most 2 time steps fit: narrow the selection with --time-start/--time-end" in message
    assert not (tmp_path / "big.npz").exists()
    export_npz(path, tmp_path / "ok.npz", time_end="2020-01-01T06:00", max_bytes=20_000)  # 2 steps fit


def test_selection_errors(tiny_store, tmp_path):
    path, _ = tiny_store
    with pytest.raises(ValueError, match=r"unknown feature\(s\) c; available: a-1, a-2, b"):
        export_npz(path, tmp_path / "x.npz", features=["a-1", "c"])
    with pytest.raises(ValueError, match=r"no time step in 2021-01-01..end; the store covers "
                                          r"2020-01-01T00:00:00 .. 2020-01-01T18:00:00 \(4 steps\)"):
        export_netcdf(path, tmp_path / "x.nc", time_start="2021-01-01")


@pytest.mark.parametrize("writer", [export_npz, export_netcdf])
def test_not_a_store(writer, tmp_path):
    with pytest.raises(StoreError, match=r"nothing.zarr: no satflow store here"):
        writer(tmp_path / "nothing.zarr", tmp_path / "out")


def test_netcdf_holds_the_store_with_cf_metadata(tiny_store, tmp_path):
    path, values = tiny_store
    out = export_netcdf(path, tmp_path / "all.nc")
    with netCDF4.Dataset(out) as nc:
        assert nc.Conventions == "CF-1.8" and nc.satflow_features == "a-1,a-2,b"
        assert nc.satflow_store_fingerprint == open_store(path).attrs["satflow_fingerprint"]
        assert sorted(nc.variables) == ["a_1", "a_2", "b", "lat", "lon", "source_file", "time"]
        for f, name in enumerate(["a_1", "a_2", "b"]):
            variable = nc[name]
            assert variable.dimensions == ("time", "lat", "lon") and variable.dtype == np.float32
            assert variable.satflow_feature == ["a-1", "a-2", "b"][f]
            assert np.isnan(variable._FillValue)
            assert variable.chunking() == [1, 8, 16] and variable.filters()["zlib"] is True
            data = variable[:]
            np.testing.assert_array_equal(data.mask, ~np.isfinite(values[:, f]))  # mask = not M
            np.testing.assert_array_equal(data.filled(np.nan), values[:, f])
            finite = values[:, f][np.isfinite(values[:, f])]
            np.testing.assert_array_equal(variable.actual_range, [finite.min(), finite.max()])
        assert (nc["lat"].units, nc["lat"].standard_name) == ("degrees_north", "latitude")
        assert (nc["lon"].units, nc["lon"].standard_name) == ("degrees_east", "longitude")
        assert nc["time"].calendar == "proleptic_gregorian" and nc["time"].units.startswith("minutes since 1970-01-01")
        decoded = netCDF4.num2date(nc["time"][:], nc["time"].units, nc["time"].calendar,
                                   only_use_cftime_datetimes=False, only_use_python_datetimes=True)
        assert [d.isoformat() for d in decoded] == [str(t) for t in TIMES.astype("datetime64[s]")]
        assert nc["source_file"][:].tolist() == ["<memory>"] * 4
    assert not (tmp_path / "all.nc.partial").exists()


def test_netcdf_time_range_and_features_reopen_with_xarray(tiny_store, tmp_path):
    path, values = tiny_store
    out = export_netcdf(path, tmp_path / "slice.nc", time_start="2020-01-01T12:00", features=["b"])
    with xr.open_dataset(out) as ds:
        assert list(ds.data_vars) == ["b", "source_file"]
        np.testing.assert_array_equal(ds["time"].values, TIMES[2:].astype("datetime64[ns]"))
        np.testing.assert_array_equal(ds["b"].values, values[2:, 2])


def test_cf_variable_names():
    assert cf_variable_name("tmbrs-1") == "tmbrs_1"
    assert cf_variable_name("thetao-d3") == "thetao_d3"
    assert cf_variable_name("1x") == "f_1x"


def test_export_command(tiny_store, tmp_path, capsys):
    path, values = tiny_store
    out = tmp_path / "cli.npz"
    assert cli_main(["export", "npz", str(path), "--out", str(out), "--time-start", "2020-01-01T18:00",
                     "--feature", "a-2"]) == 0
    with np.load(out, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["X"], values[3:, 1:2])
    assert cli_main(["export", "netcdf", str(path), "--out", str(tmp_path / "cli.nc")]) == 0
    assert cli_main(["export", "npz", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "no satflow store here" in capsys.readouterr().err


def test_netcdf_refuses_colliding_variable_names(tmp_path):
    from satflow.store import write_store_from_arrays

    path = write_store_from_arrays(tmp_path / "clash.zarr", np.zeros((1, 2, 2, 2), np.float32),
                                   times=TIMES[:1], features=["tb-1", "tb_1"], lat=np.arange(2.0), lon=np.arange(2.0))
    with pytest.raises(ValueError, match=r"feature names map to NetCDF variable name\(s\) \['tb_1'\] that collide"):
        export_netcdf(path, tmp_path / "clash.nc")
    export_netcdf(path, tmp_path / "one.nc", features=["tb-1"])
