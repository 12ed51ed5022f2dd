"""convml_tt meta.yaml -> satflow config, on the exact examples of convml_tt's dataset documentation."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pytest
import xarray as xr
import yaml
from sources_helpers import write_nc

from satflow.cli import main as cli_main
from satflow.config import load_config
from satflow.convml_meta import MetaError, config_from_meta

COMPLETE = """
source: goes16
type: truecolor_rgb

time:
  t_start: 2020-02-02T14:00
  t_end: 2020-02-02T14:30

domain:
  central_latitude: 13.3 # 13 + (18 / 60)
  central_longitude: -57.72 # -(57 + (43 / 60))
  l_zonal: 200000
  l_meridional: 200000

sampling:
  resolution: 1000.0
  triplets:
    scene_collections_splitting: random_by_relative_sample_size
    N_triplets: {train: 10, study: 2}
    tile_N: 256
"""
LES = """
source: LES
type: singlechannel__rlut
"""
INTERVALS = """
time:
  intervals:
    - t_start: 2018-10-01 00:00:00
      t_end: 2019-03-01 00:00:00
    - t_start: 2019-10-01 00:00:00
      t_end: 2020-03-01 00:00:00
    - t_start: 2020-10-01 00:00:00
      t_end: 2021-03-01 00:00:00
  filters:
    N_hours_from_zenith: 4.0
"""
FILTERED = """
time:
  t_start: 2020-02-02T14:00
  t_end: 2020-02-02T14:30
  filters:
    N_hours_from_zenith: 4.0
"""
DOMAIN = """
domain:
  central_latitude: 14.0
  central_longitude: -48.0
  l_zonal: 3000.0e+3
  l_meridional: 1000.0e+3
"""
SAMPLING = """
sampling:
  resolution: 1000.0
  triplets:
    scene_collections_splitting: random_by_relative_sample_size
    N_triplets: {train: 10, study: 2}
    tile_N: 256
"""
AUX = """
aux_products:
  cloud_top_height_goes16:
    source: goes16
    type: ACHA
  cloud_top_height_ceres:
    source: ceres
    type: goes16n__cloud_top_height
    scene_mapping_strategy: all_scenes_within_dt_aux
    dt_aux: PT30M
"""


def meta(*texts: str) -> dict:
    return yaml.safe_load("\n".join(texts))


def test_goes16_without_local_files_says_satflow_does_not_download():
    with pytest.raises(MetaError) as err:
        config_from_meta(meta(COMPLETE))
    assert str(err.value).startswith("meta.yaml source: goes16 is fetched from S3 by convml_tt; satflow reads local "
                                     "files and does not download from Amazon S3")
    assert "--input 'goes16/*.nc'" in str(err.value)


def test_the_complete_example_maps_onto_ingest_and_index(tmp_path):
    translation = config_from_meta(meta(COMPLETE), inputs=["goes16/*.nc"])
    assert translation.config["ingest"] == {
        "inputs": ["goes16/*.nc"],
        "source": {"kind": "regrid", "variables": ["CMI_C01", "CMI_C02", "CMI_C03"],
                   "domain": {"central_latitude": 13.3, "central_longitude": -57.72, "l_zonal": 200000.0,
                              "l_meridional": 200000.0, "resolution": 1000.0},
                   "time_selection": {"intervals": [{"start": "2020-02-02T14:00", "end": "2020-02-02T14:30"}]}}}
    index = translation.config["index"]
    assert index["patch_size"] == index["stride"] == 256
    assert index["split"] == {"train": pytest.approx(10 / 12), "val": 0.0, "test": pytest.approx(2 / 12)}
    assert index["triplets"] == {"n_per_split": 10}
    assert any("larger than the domain's 200 x 200 cells" in n for n in translation.notes)
    assert any("satflow composes no RGB image" in n for n in translation.notes)
    config = load_config_text(translation.to_yaml(), tmp_path)
    assert config.ingest.source.domain.resolution == 1000.0 and config.index.patch_size == 256


def load_config_text(text: str, tmp_path):
    (tmp_path / "satflow.yaml").write_text(text)
    return load_config(tmp_path / "satflow.yaml")


def test_les_reads_source_data_next_to_meta_yaml(tmp_path):
    translation = config_from_meta(meta(LES), base_dir=tmp_path)
    assert translation.config["ingest"] == {"inputs": [str(tmp_path / "source_data" / "LES" / "*.nc")],
                                            "source": {"kind": "gridded", "variables": ["rlut"]}}


def test_intervals_and_the_zenith_filter_at_the_domain_centre():
    translation = config_from_meta(meta(LES, INTERVALS, DOMAIN, "sampling: {resolution: 1000.0}"), inputs=["x.nc"])
    selection = translation.config["ingest"]["source"]["time_selection"]
    assert selection == {"intervals": [{"start": "2018-10-01T00:00:00", "end": "2019-03-01T00:00:00"},
                                       {"start": "2019-10-01T00:00:00", "end": "2020-03-01T00:00:00"},
                                       {"start": "2020-10-01T00:00:00", "end": "2021-03-01T00:00:00"}],
                         "N_hours_from_zenith": 4.0, "solar_longitude": -48.0}
    assert translation.config["ingest"]["source"]["domain"]["l_zonal"] == 3_000_000.0


def test_zenith_filter_without_a_domain_uses_the_files_centre():
    translation = config_from_meta(meta(LES, FILTERED), inputs=["x.nc"])
    selection = translation.config["ingest"]["source"]["time_selection"]
    assert selection["N_hours_from_zenith"] == 4.0 and "solar_longitude" not in selection
    assert any("centre of the files' longitudes" in n for n in translation.notes)


@pytest.mark.parametrize(("kind", "variables"), [
    ("multichannel__10__11__12", ["CMI_C10", "CMI_C11", "CMI_C12"]),
    ("singlechannel__10", ["CMI_C10"]),
    ("singlechannel__bt_13", ["CMI_C13"]),
])
def test_goes16_channel_types(kind, variables):
    translation = config_from_meta(meta(COMPLETE.replace("truecolor_rgb", kind)), inputs=["g/*.nc"])
    assert translation.config["ingest"]["source"]["variables"] == variables


def test_aux_products_need_local_files_and_map_strategy_and_dt(tmp_path):
    text = meta(LES, DOMAIN, SAMPLING, AUX)
    with pytest.raises(MetaError, match=r"aux_products.cloud_top_height_goes16: convml_tt fetches goes16 ACHA itself; "
                                        r"satflow reads local files and does not download from Amazon S3.*"
                                        r"--aux-input cloud_top_height_goes16=GLOB"):
        config_from_meta(text, inputs=["les/*.nc"])
    translation = config_from_meta(text, inputs=["les/*.nc"], aux_inputs={
        "cloud_top_height_goes16": ["acha/*.nc"], "cloud_top_height_ceres": ["ceres/*.nc"]})
    aux = translation.config["ingest"]["aux_products"]
    assert aux == {"cloud_top_height_goes16": {"inputs": ["acha/*.nc"], "source": {"variables": ["HT"]}},
                   "cloud_top_height_ceres": {"inputs": ["ceres/*.nc"], "source": {"variables": ["cloud_top_height"]},
                                              "scene_mapping_strategy": "all_scenes_within_dt_aux", "dt_aux": "PT30M"}}
    config = load_config_text(translation.to_yaml(), tmp_path)
    ceres = config.ingest.aux_products["cloud_top_height_ceres"]
    assert ceres.dt_aux_hours == 0.5 and ceres.source.kind == "regrid"
    assert ceres.source.domain == config.ingest.source.domain  # regridded onto the primary domain


@pytest.mark.parametrize(("text", "message"), [
    ("source: LES\ntype: singlechannel__rlut\nsampling: {resolution: 3000.0}\n" + DOMAIN,
     "meta.yaml maps onto an invalid satflow config:\nthe translated config: invalid configuration\n  "
     "ingest.source.domain: Value error, resolution 3000 m does not divide l_meridional 1e+06 m into whole cells"),
    ("source: LES\ntype: singlechannel__rlut\n" + DOMAIN,
     "meta.yaml sampling.resolution: a domain needs the resolution in metres (e.g. 1000.0)"),
    ("source: goes16\ntype: singlechannel__bt_2\n" + FILTERED,
     "meta.yaml type: channel 2 is reflective (1-6): it has no brightness temperature; drop the bt_ prefix"),
    ("source: LES\ntype: singlechannel__rlut\ntime: {t_start: 2020-01-01, t_end: 2020-02-01, filters: {cloudy: 1}}",
     "meta.yaml time.filters: cloudy not supported"),
    ("source: LES\ntype: rlut", "meta.yaml type: 'rlut' is not <composite_type>__<field>"),
    ("source: goes16\ntype: truecolor_rgb", "meta.yaml time: goes16 data needs a time span"),
    ("source: LES\ntype: singlechannel__rlut\nextra: 1", "meta.yaml: unknown key(s) extra"),
])
def test_what_cannot_map_is_named(text, message):
    with pytest.raises(MetaError) as err:
        config_from_meta(yaml.safe_load(text), inputs=["x.nc"])
    assert message in str(err.value)


def test_from_meta_command_writes_a_config_that_ingests(tmp_path, capsys):
    """The LES example end to end: meta.yaml next to source_data/LES, `satflow from-meta`, `satflow ingest`."""
    les = tmp_path / "source_data" / "LES"
    les.mkdir(parents=True)
    lat, lon = np.arange(10.0, 16.0, 0.5), np.arange(-60.0, -54.0, 0.5)
    with netCDF4.Dataset(les / "rico.nc", "w") as ds:
        for name, values, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            ds.createDimension(name, values.size)
            ds.createVariable(name, "f8", (name,))[:] = values
            ds[name].units = units
        ds.createDimension("time", 3)
        ds.createVariable("time", "f8", ("time",))[:] = [13.0, 14.0, 15.0]
        ds["time"].units = "hours since 2020-02-02"
        ds.createVariable("rlut", "f4", ("time", "lat", "lon"))[:] = np.full((3, lat.size, lon.size), 250.0)
    (tmp_path / "meta.yaml").write_text(LES + FILTERED.replace("14:30", "15:30") + DOMAIN.replace(
        "14.0", "13.0").replace("-48.0", "-57.0").replace("3000.0e+3", "200000").replace("1000.0e+3", "100000")
        + "sampling: {resolution: 10000.0}\n")
    assert cli_main(["from-meta", str(tmp_path / "meta.yaml"), "--out", str(tmp_path / "satflow.yaml")]) == 0
    store = tmp_path / "s.zarr"
    assert cli_main(["ingest", "--config", str(tmp_path / "satflow.yaml"), "--out", str(store), "--no-progress",
                     "--set", "cluster.local.n_workers=1"]) == 0
    ds = xr.open_zarr(store)
    # 14:00 and 15:00 are inside [14:00, 15:30); at -57 E local noon is 15:48 UTC, within 4 h of both.
    np.testing.assert_array_equal(ds["time"].values, np.array(["2020-02-02T14", "2020-02-02T15"], "datetime64[ns]"))
    assert ds["X"].shape == (2, 1, 10, 20) and ds["crs"].attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    assert json.loads(ds.attrs["satflow_config"])["source"]["variables"] == ["rlut"]


GOES_EAST = {"grid_mapping_name": "geostationary", "perspective_point_height": 35786023.0,
             "longitude_of_projection_origin": -75.0, "latitude_of_projection_origin": 0.0,
             "semi_major_axis": 6378137.0, "semi_minor_axis": 6356752.31414, "sweep_angle_axis": "x"}


def write_mcmip_like(path, seconds_since_2000_noon: float) -> None:
    """An ABI L2 MCMIP-shaped file around the example's domain: packed int16 scan angles (rad) and reflectances
    CMI_C01..C03 with a geostationary grid mapping, a scalar time `t`, and a quality flag that is not ingested."""
    import pyproj

    crs = pyproj.CRS.from_cf(GOES_EAST)
    height = GOES_EAST["perspective_point_height"]
    to_scan = pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
    x0, y0 = (v / height for v in to_scan.transform(-57.72, 13.3))
    x = np.round(np.arange(x0 - 0.004, x0 + 0.004, 5.6e-5) / 5.6e-5).astype(np.int16)
    y = np.round(np.arange(y0 + 0.004, y0 - 0.004, -5.6e-5) / 5.6e-5).astype(np.int16)
    packed_axis = {"scale_factor": 5.6e-5, "add_offset": 0.0, "units": "rad"}
    rng = np.random.default_rng(0)
    variables = {
        "x": (("x",), x, {**packed_axis, "standard_name": "projection_x_angular_coordinate"}),
        "y": (("y",), y, {**packed_axis, "standard_name": "projection_y_angular_coordinate"}),
        "t": ((), np.float64(seconds_since_2000_noon), {"units": "seconds since 2000-01-01 12:00:00",
                                                        "standard_name": "time"}),
        "goes_imager_projection": ((), np.int32(-2147483647), GOES_EAST),
        "DQF_C01": (("y", "x"), np.zeros((y.size, x.size), np.int8), {"grid_mapping": "goes_imager_projection"}),
    }
    for channel in (1, 2, 3):
        reflectance = rng.uniform(0.05, 0.6, (y.size, x.size))
        variables[f"CMI_C{channel:02d}"] = (("y", "x"), np.round(reflectance / 0.000244).astype(np.int16), {
            "scale_factor": 0.000244, "add_offset": 0.0, "_FillValue": np.int16(-1), "units": "1",
            "grid_mapping": "goes_imager_projection", "coordinates": f"band_id_C{channel:02d} t y x"})
    write_nc(path, variables)


def test_goes16_example_ingests_local_mcmip_files(tmp_path):
    """The documentation's complete example with local files: scenes at 14:00, 14:10 and 14:30 (t_end, left
    out) regridded onto its 200 km domain as three reflectance features."""
    (tmp_path / "goes16").mkdir()
    noon_2000 = np.datetime64("2000-01-01T12:00")
    for minute in (0, 10, 30):
        stamp = np.datetime64("2020-02-02T14:00") + np.timedelta64(minute, "m")
        write_mcmip_like(tmp_path / "goes16" / f"mcmip_{minute:02d}.nc", (stamp - noon_2000) / np.timedelta64(1, "s"))
    (tmp_path / "meta.yaml").write_text(COMPLETE)
    assert cli_main(["from-meta", str(tmp_path / "meta.yaml"), "--input", str(tmp_path / "goes16" / "*.nc"),
                     "--out", str(tmp_path / "satflow.yaml")]) == 0
    store = tmp_path / "goes.zarr"
    assert cli_main(["ingest", "--config", str(tmp_path / "satflow.yaml"), "--out", str(store), "--no-progress",
                     "--set", "cluster.local.n_workers=1"]) == 0
    ds = xr.open_zarr(store)
    np.testing.assert_array_equal(ds["time"].values, np.array(["2020-02-02T14:00", "2020-02-02T14:10"],
                                                               "datetime64[ns]"))
    assert [str(f) for f in ds["feature"].values] == ["CMI_C01", "CMI_C02", "CMI_C03"]
    assert ds["X"].shape == (2, 3, 200, 200) and bool(ds["M"].all())
    assert 0.05 <= float(ds["X"].min()) and float(ds["X"].max()) <= 0.6 + 1e-4
