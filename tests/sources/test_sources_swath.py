"""The swath source: binning equals a brute-force loop (dateline, poles, fill, windows, blocks), the sample's layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from satflow.config import load_config
from satflow.ingest import run_ingest
from satflow.sources import swath
from satflow.sources.base import group_inputs, read_input, scan_input
from sources_helpers import write_nc

FILL = -9999.0
CENTRE_S = 6 * 3600.0  # window 2020-01-01T06 (seconds since 2020-01-01)


def swath_config(*overrides):
    return load_config(None, ["ingest.source.kind=swath", "ingest.source.swath.resolution=30", *overrides]).ingest.source


def write_swath(path, seed: int, n_lines: int = 40, n_fov: int = 5):
    """A random swath with observations on the dateline, at both poles, fill values and times around the window."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(-90, 90, (n_lines, n_fov))
    lon = rng.uniform(-200, 380, (n_lines, n_fov))
    lat[0, :] = [90.0, -90.0, 89.99, -89.99, 0.0]
    lon[1, :] = [180.0, -180.0, 179.999, 540.0, -0.0]
    lat[2, 0] = FILL  # an invalid position
    time = CENTRE_S + rng.uniform(-4 * 3600, 4 * 3600, n_lines)  # some outside [03, 09)
    time[3] = CENTRE_S - 3 * 3600  # exactly on the window's start: inside
    time[4] = CENTRE_S + 3 * 3600  # exactly on its end: outside
    tb = rng.normal(250, 10, (n_lines, n_fov, 3)).round(2)
    tb[rng.random(tb.shape) < 0.2] = FILL
    angle = rng.uniform(0, 60, (n_lines, n_fov)).round(1)
    variables = {
        "lat": (("scanline", "fov"), lat, {"standard_name": "latitude", "units": "degrees_north", "_FillValue": FILL}),
        "lon": (("scanline", "fov"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        "time": (("scanline",), time, {"units": "seconds since 2020-01-01 00:00:00"}),
        "tb": (("scanline", "fov", "channel"), tb.astype(np.float32), {"units": "K", "_FillValue": np.float32(FILL)}),
        "said": (("scanline",), np.full(n_lines, 3 + seed, np.float32), {}),
        "angle": (("scanline", "fov"), angle.astype(np.float32), {"units": "degree"}),
    }
    write_nc(path, variables)
    return {"lat": lat, "lon": lon, "time": time, "tb": tb, "said": np.full(n_lines, 3 + seed), "angle": angle}


def brute_force(swaths: list[dict], resolution: float = 30.0):
    """Per-observation Python loop: cell by searching the cell edges, sums, counts, nearest (first on ties)."""
    lat_edges = np.arange(-90, 90 + resolution, resolution)
    lon_edges = np.arange(-180, 180 + resolution, resolution)
    n_lat, n_lon = len(lat_edges) - 1, len(lon_edges) - 1
    sums, counts = np.zeros((3, n_lat, n_lon)), np.zeros((3, n_lat, n_lon))
    best = np.full((n_lat, n_lon), np.inf)
    nearest = np.full((2, n_lat, n_lon), np.nan)
    for s in swaths:
        for i in range(s["lat"].shape[0]):
            dt = s["time"][i] - CENTRE_S
            if not -3 * 3600 <= dt < 3 * 3600:
                continue
            for j in range(s["lat"].shape[1]):
                lat, lon = s["lat"][i, j], s["lon"][i, j]
                if lat == FILL:
                    continue
                lon = (lon + 180.0) % 360.0 - 180.0
                row = n_lat - 1 if lat == 90.0 else next(r for r in range(n_lat) if lat_edges[r] <= lat < lat_edges[r + 1])
                col = next(c for c in range(n_lon) if lon_edges[c] <= lon < lon_edges[c + 1])
                for c in range(3):
                    if s["tb"][i, j, c] != FILL:
                        sums[c, row, col] += s["tb"][i, j, c]
                        counts[c, row, col] += 1
                if abs(dt) < best[row, col]:
                    best[row, col] = abs(dt)
                    nearest[:, row, col] = s["said"][i], s["angle"][i, j]
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return np.concatenate([mean, np.where(counts > 0, counts, np.nan), nearest])


def window_input(paths, source):
    infos = [scan_input(str(p), source) for p in paths]
    inputs, skipped = group_inputs(infos, source)
    assert skipped == []
    return next(i for i in inputs if str(i.times[0]) == "2020-01-01T06:00:00.000000000")


@pytest.mark.parametrize("block_values", [2_000_000, 7])  # one block per file, and 1 scan line per block
def test_binning_equals_brute_force(tmp_path, monkeypatch, block_values):
    monkeypatch.setattr(swath, "BLOCK_VALUES", block_values)
    swaths = [write_swath(tmp_path / f"s{seed}.nc", seed) for seed in range(3)]
    source = swath_config()
    info = window_input(sorted(tmp_path.glob("*.nc")), source)
    assert info.features == ("tb-1", "tb-2", "tb-3", "channels-1", "channels-2", "channels-3", "said", "angle")
    assert info.units == ("K", "K", "K", "1", "1", "1", "", "degree")
    got = read_input(info, source)[0]
    expected = brute_force(swaths)
    np.testing.assert_allclose(got[:3], expected[:3], rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(got[3:], expected[3:].astype(np.float32))
    assert np.isfinite(got[0, -1]).any() and np.isfinite(got[0, 0]).any()  # poles observed


def test_window_edges_and_provenance(tmp_path):
    write_swath(tmp_path / "a.nc", 0)
    source = swath_config()
    infos = [scan_input(str(tmp_path / "a.nc"), source)]
    # times span 02:00..10:00: windows centred 00 (02:xx), 06 and 12 (09:xx)
    assert [str(t)[11:16] for t in infos[0].times] == ["00:00", "06:00", "12:00"]
    inputs, _ = group_inputs(infos, source)
    assert [i.path for i in inputs] == [str(tmp_path / "a.nc")] * 3


def test_dateline_crop_bins_both_sides(tmp_path):
    lat = np.zeros((1, 4))
    lon = np.array([[179.0, -179.0, 181.0, 170.0]])
    write_nc(tmp_path / "d.nc", {
        "lat": (("scanline", "fov"), lat, {"standard_name": "latitude"}),
        "lon": (("scanline", "fov"), lon, {"standard_name": "longitude"}),
        "time": (("scanline",), np.array([CENTRE_S]), {"units": "seconds since 2020-01-01"}),
        "tb": (("scanline", "fov", "channel"), np.array([[[1.0], [2.0], [3.0], [4.0]]]), {}),
    })
    source = swath_config("ingest.source.swath.resolution=2",
                          "ingest.source.crop={lat_min: -2, lat_max: 2, lon_min: 176, lon_max: -176}")
    info = window_input([tmp_path / "d.nc"], source)
    np.testing.assert_allclose(info.lon, [177, 179, 181, 183])
    values = read_input(info, source)[0]
    np.testing.assert_array_equal(values[0, 1], [np.nan, 1.0, 2.5, np.nan])  # 170 is outside the crop
    np.testing.assert_array_equal(values[1, 1], [np.nan, 1, 2, np.nan])


def test_gridded_file_is_skipped_with_a_reason(tmp_path):
    from sources_helpers import LAT, LON, lat_lon_variables

    write_nc(tmp_path / "g.nc", {**lat_lon_variables(LAT, LON), "x": (("lat", "lon"), np.zeros((3, 4)), {})})
    with pytest.raises(swath.SourceError, match="no 2-D latitude .* not a raw swath file"):
        scan_input(str(tmp_path / "g.nc"), swath_config())


@pytest.fixture(scope="module")
def swath_sample(tmp_path_factory):
    from satflow.sources.samples import write_amsua_sample, write_amsua_swath_sample

    root = tmp_path_factory.mktemp("swaths")
    return write_amsua_swath_sample(root / "raw", steps=1, seed=2), write_amsua_sample(root / "grid", steps=1,
                                                                                        resolution=6.0, seed=2)


def test_sample_swaths_bin_to_the_gridded_layout(swath_sample, tmp_path):
    raw, grid = swath_sample
    assert len(raw) == 3 * math.ceil(6 * 3600 / 6060)  # three satellites, orbits of ~101 min over 6 h
    config = load_config(None, ["ingest.source.kind=swath", "ingest.source.swath.resolution=6"]).ingest
    run_ingest([str(p) for p in raw], tmp_path / "s.zarr", config, progress=False)
    run_ingest([str(p) for p in grid], tmp_path / "g.zarr", load_config().ingest, progress=False)
    binned, gridded = xr.open_zarr(tmp_path / "s.zarr"), xr.open_zarr(tmp_path / "g.zarr")
    assert list(binned.feature.values) == list(gridded.feature.values) and len(binned.feature) == 40
    assert list(binned.units.values) == list(gridded.units.values)
    assert binned.time.values.tolist() == gridded.time.values.tolist()
    assert binned.source_file.values[0].count(";") == len(raw) - 1
    x, y = binned.X.sel(feature="tmbrs-5").values, gridded.X.sel(feature="tmbrs-5").values
    both = np.isfinite(x) & np.isfinite(y)
    assert 0.6 < np.isfinite(x).mean() < 0.95 and both.sum() > 0.8 * np.isfinite(y).sum()  # same swath pattern
    assert np.corrcoef(x[both], y[both])[0, 1] > 0.9
