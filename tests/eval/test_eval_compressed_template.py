"""An eval's compressed store is created with zarr alone; its metadata and coordinates are exactly
what xarray's `to_zarr(compute=False)` wrote for the same Dataset (the route it replaced, kept here
as the reference), in cube and index mode, so `xr.open_zarr` reads it as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from satflow.codecs.spec import CodecSpec
from satflow.eval.api import prepare_eval
from satflow.eval.options import EvalConfig
from satflow.eval.stores import (DROPPED_ATTRS, LAT_ATTRS, LON_ATTRS, CUBE_DIMS, FORMAT, PATCH_DIMS,
                                 create_compressed_store, mask_compressor)

SPECS = ("sz3:tol=0.5", "errorbound:inner=constant,eps=0.5")


def xarray_compressed_store(path: Path, plan, spec: CodecSpec, facts) -> None:
    """The former `create_compressed_store`: the Dataset with dask-backed X and M, written by xarray."""
    import dask.array as da

    from satflow.codecs.zarr import zarr_codec
    from satflow.store import consolidate

    t0, t1 = plan.time_range
    n_features = len(plan.features)
    if plan.mode == "index":
        ds, chunk, dims = _patch_dataset(plan, facts), (1, n_features, *plan.block_shape), PATCH_DIMS
    else:
        ds, chunk, dims = _cube_dataset(plan, facts), (1, n_features, *plan.reconstruction_chunks), CUBE_DIMS
    shape = tuple(ds.sizes[d] if d in ds.sizes else n_features for d in dims)
    ds["X"] = (dims, da.full(shape, np.nan, dtype=np.float32, chunks=chunk),
               {"long_name": f"reconstruction by {spec}; NaN where invalid"})
    ds["M"] = (dims, da.zeros(shape, dtype=np.uint8, chunks=chunk),
               {"long_name": "validity mask", "flag_values": [0, 1], "flag_meanings": "invalid valid"})
    ds["units"] = ("feature", np.asarray(facts.units or ("",) * n_features, dtype=object))
    ds.attrs = {**{k: v for k, v in facts.attrs.items() if k not in DROPPED_ATTRS}, **{
        "satflow_compressed": FORMAT, "codec": str(spec), "checkpoint": spec.checkpoint, "source_store": plan.store,
        "source_fingerprint": plan.fingerprint, "time_range": [t0, t1], "mode": plan.mode,
        "block_shape": list(plan.block_shape), "reconstruction_chunks": list(plan.reconstruction_chunks),
        "batch_size": plan.batch_size, "source_files": list(facts.source_files[t0:t1]),
        "features": list(plan.features), "units": list(facts.units or ("",) * n_features)}}
    encoding = {"X": {"chunks": chunk, "serializer": zarr_codec(spec), "compressors": None},
                "M": {"chunks": chunk, "compressors": [mask_compressor()], "_FillValue": None}}
    ds.to_zarr(str(path), mode="w", compute=False, zarr_format=3, encoding=encoding, consolidated=False)
    consolidate(path)


def _time_variable(numbers, facts, dims):
    import xarray as xr

    return xr.Variable(dims, np.asarray(numbers), {**facts.time_attrs, "standard_name": "time"})


def _cube_dataset(plan, facts):
    import xarray as xr

    t0, t1 = plan.time_range
    ds = xr.Dataset(coords={
        "time": _time_variable(facts.time_numbers[t0:t1], facts, ("time",)),
        "feature": ("feature", np.asarray(plan.features, dtype=object)),
        "lat": ("lat", np.asarray(facts.lat, np.float64), LAT_ATTRS),
        "lon": ("lon", np.asarray(facts.lon, np.float64), LON_ATTRS),
    })
    ds["source_file"] = ("time", np.asarray(facts.source_files[t0:t1] or ("",) * (t1 - t0), dtype=object))
    return ds


def _patch_dataset(plan, facts):
    import xarray as xr

    lat, lon = np.asarray(facts.lat, np.float64), np.asarray(facts.lon, np.float64)
    ts = np.array([b.t for b in plan.blocks], np.int64)
    return xr.Dataset(coords={
        "t": ("patch", ts, {"long_name": "time index of the patch in the source store"}),
        "time": _time_variable(np.asarray(facts.time_numbers)[ts], facts, ("patch",)),
        "y0": ("patch", np.array([b.y0 for b in plan.blocks], np.int64), {"long_name": "first lat index"}),
        "x0": ("patch", np.array([b.x0 for b in plan.blocks], np.int64), {"long_name": "first lon index"}),
        "feature": ("feature", np.asarray(plan.features, dtype=object)),
        "lat": (("patch", "y"), np.stack([lat[b.y0:b.y1] for b in plan.blocks]), LAT_ATTRS),
        "lon": (("patch", "x"), np.stack([lon[b.x0:b.x1] for b in plan.blocks]), LON_ATTRS),
    })


def metadata(path: Path) -> dict:
    """Every zarr.json of the store, by folder; the consolidated copy's entries sorted by name."""
    documents = {}
    for document in sorted(path.rglob("zarr.json")):
        meta = json.loads(document.read_text())
        consolidated = meta.get("consolidated_metadata")
        if consolidated:
            consolidated["metadata"] = dict(sorted(consolidated["metadata"].items()))
        documents[str(document.parent.relative_to(path))] = meta
    return documents


def coordinate_chunks(path: Path) -> dict:
    """The chunk files holding data (coordinates, units, source files): none of X or M yet."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("c/*")) if p.is_file()}


def _plans(eval_store, tmp_path) -> list:
    from satflow.index import build_index
    from satflow.index.options import IndexConfig

    path, _ = eval_store
    index = tmp_path / "index.parquet"
    build_index(path, index, IndexConfig(patch_size=8, stride=4, max_nodata_fraction=1.0))
    return [prepare_eval(path, EvalConfig(codecs=list(SPECS))),
            prepare_eval(path, EvalConfig(codecs=list(SPECS), index=str(index), split=None, sample=5, seed=7))]


@pytest.mark.parametrize("spec", SPECS)
def test_the_compressed_store_s_metadata_is_xarray_s_in_cube_and_index_mode(eval_store, tmp_path, spec):
    for k, (facts, plan) in enumerate(_plans(eval_store, tmp_path)):
        ours, theirs = tmp_path / f"ours-{k}.zarr", tmp_path / f"xarray-{k}.zarr"
        create_compressed_store(ours, plan, CodecSpec.parse(spec), facts)
        xarray_compressed_store(theirs, plan, CodecSpec.parse(spec), facts)
        assert metadata(ours) == metadata(theirs), plan.mode
        assert coordinate_chunks(ours) == coordinate_chunks(theirs), plan.mode


def test_creating_it_imports_neither_xarray_nor_dask_array(eval_store, tmp_path):
    import subprocess
    import sys

    path, _ = eval_store
    code = ("import sys\n"
            "from satflow.codecs.spec import CodecSpec\n"
            "from satflow.eval.api import prepare_eval\n"
            "from satflow.eval.options import EvalConfig\n"
            "from satflow.eval.stores import create_compressed_store\n"
            f"facts, plan = prepare_eval({str(path)!r}, EvalConfig(codecs=['sz3:tol=0.5']))\n"
            f"create_compressed_store({str(tmp_path / 'c.zarr')!r}, plan, CodecSpec.parse('sz3:tol=0.5'), facts)\n"
            "print(sorted(m for m in ('xarray', 'dask.array', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
