"""The store template (`satflow.store.create_template`) has exactly the metadata, chunk files and
values that xarray's `to_zarr` wrote before the template was written with zarr alone (recorded at
commit 6728b98 by tests/data/record_store_template.py, for every kind of layout)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import cftime
import numpy as np
import pytest
import zarr

from satflow.store import StoreLayout, create_template

RECORDED = Path(__file__).parent / "data" / "store_template.json"
CHUNKS = {"time": 2, "feature": -1, "lat": 3, "lon": 4}


def _times(n: int) -> np.ndarray:
    return np.datetime64("2021-01-01T00", "ns") + np.arange(n) * np.timedelta64(6, "h")


def plain():
    layout = StoreLayout(_times(3), ("a", "b"), np.linspace(-1, 1, 5), np.linspace(0, 3, 7), CHUNKS,
                         units=("K", ""))
    return layout, {"satflow_config": "{}", "note": "plain"}, None, None


def no_steps():
    layout = StoreLayout(_times(0), ("a",), np.linspace(-1, 1, 5), np.linspace(0, 3, 7), CHUNKS)
    return layout, {}, None, None


def one_step_whole_chunks():
    layout = StoreLayout(_times(1), ("a", "b", "c"), np.arange(4.0), np.arange(6.0),
                         {"time": 1, "feature": -1, "lat": -1, "lon": -1}, compression_level=5)
    return layout, {}, None, None


def model_calendar():
    times = np.array([cftime.Datetime360Day(2000, 2, 30, 12), cftime.Datetime360Day(2000, 3, 1, 12)], dtype=object)
    layout = StoreLayout(times, ("t",), np.arange(3.0), np.arange(4.0), CHUNKS, units=("degC",))
    return layout, {}, None, None


def auxiliary_products():
    layout = StoreLayout(_times(4), ("tb", "cloud/cth", "sst/analysed_sst"), np.arange(3.0), np.arange(4.0), CHUNKS,
                         units=("K", "m", "K"), aux_products=("cloud", "sst"))
    return layout, {}, None, None


def local_domain():
    from satflow.sources.domain import domain_coordinates
    from satflow.sources.options import DomainConfig

    coordinates = domain_coordinates(DomainConfig(central_latitude=45.0, central_longitude=10.0, l_zonal=200_000.0,
                                                  l_meridional=150_000.0, resolution=50_000.0))
    n_lat, n_lon = coordinates["latitude"][1].shape
    layout = StoreLayout(_times(2), ("t2m",), coordinates["latitude"][1][:, n_lon // 2],
                         coordinates["longitude"][1][n_lat // 2], CHUNKS, units=("K",))
    return layout, {}, coordinates, None


def through_a_codec():
    from satflow.codecs.zarr import zarr_codec

    layout = StoreLayout(_times(2), ("a", "b"), np.arange(3.0), np.arange(4.0), CHUNKS)
    return layout, {}, None, zarr_codec("sz3:tol=0.5")


LAYOUTS = {f.__name__: f for f in (plain, no_steps, one_step_whole_chunks, model_calendar, auxiliary_products,
                                    local_domain, through_a_codec)}


def describe(path: Path) -> dict:
    """Every array's zarr.json (less consolidated metadata), its values and its chunk files; the group's attributes."""
    group = zarr.open_group(str(path), mode="r", zarr_format=3, use_consolidated=False)
    arrays = {}
    for name, array in sorted(group.arrays()):
        values = array[...]
        arrays[name] = {
            "metadata": json.loads(json.dumps(array.metadata.to_dict(), default=str)),
            "dtype": str(values.dtype),
            "values": values.tolist() if values.dtype.kind in "OUT" else base64.b64encode(values.tobytes()).decode(),
            "chunk_files": sorted(str(p.relative_to(path / name)) for p in (path / name).rglob("*")
                                  if p.is_file() and p.name != "zarr.json"),
        }
    return {"attributes": json.loads(json.dumps(dict(group.attrs), default=str)), "arrays": arrays}


def write(name: str, root: Path) -> Path:
    layout, attrs, coordinates, serializer = LAYOUTS[name]()
    path = root / f"{name}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    create_template(path, layout, attrs, coordinates, serializer=serializer)
    return path


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_the_template_is_the_recorded_one(name, tmp_path):
    recorded = json.loads(RECORDED.read_text())[name]
    written = describe(write(name, tmp_path))
    assert written["attributes"] == recorded["attributes"]
    assert sorted(written["arrays"]) == sorted(recorded["arrays"])
    for array, want in recorded["arrays"].items():
        assert written["arrays"][array] == want, array


def test_the_template_names_the_grid_mapping_as_the_domain_does():
    # the template keeps its own copy of the name (importing sources.domain would import pyproj)
    from satflow.sources.domain import GRID_MAPPING_NAME
    from satflow.store import template

    assert template.GRID_MAPPING_NAME == GRID_MAPPING_NAME
