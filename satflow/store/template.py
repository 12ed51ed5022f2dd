"""The empty store (`create_template`) and its growth along time (`extend_time`), written with zarr alone.

The template holds every array of the layout (package docstring), with the fill values that zarr
does not store: region tasks write every chunk anyway. Its metadata is what xarray's `to_zarr`
wrote for the same Dataset (CF-encoded time, strings, `_FillValue` and `coordinates` attributes;
tests/test_store_template.py holds the recorded copy), so `xr.open_zarr` reads it as before. xarray
itself is not used here: it imports pandas and, for any Variable, dask.array (1.2-1.5 s in the
ingest command's process while its workers start, on the same two cores), for a metadata write of
a few milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from satflow.sources.timecodec import as_time_array, encode_times, time_encoding
from satflow.store.layout import CF_ATTRIBUTES, DIMS, STAT_NAMES, STEP_NAMES, StoreLayout, compressor
from satflow.store.read import open_group
from satflow.version import __version__

# xarray's CF encoding of a NaN _FillValue in a zarr v3 attribute: base64 of the float64 NaN's bytes.
NAN_FILL_ATTRIBUTE = "AAAAAAAA+H8="
GRID_MAPPING_NAME = "crs"  # satflow.sources.domain.GRID_MAPPING_NAME (not imported: sources import pyproj)


def create_template(path: str | Path, layout: StoreLayout, attrs: dict | None = None,
                    grid_coordinates: dict | None = None, *, serializer=None) -> None:
    """Write metadata, coordinates and empty (fill-valued) data variables; no data chunk is written.

    `grid_coordinates` are extra coordinates of a projected grid, {name: (dims, values, attrs)}
    (`satflow.sources.domain.domain_coordinates` of a local domain): X and M name the grid
    mapping. `serializer`: X through this Zarr serializer (`satflow.codecs.zarr.zarr_codec(spec)`)
    with no compressor on top, instead of Blosc (`ingest.codec`).
    """
    group = zarr.open_group(str(path), mode="w", zarr_format=3,
                            attributes={"satflow_version": __version__, "Conventions": "CF-1.8", **(attrs or {})})
    writer = CFArrayWriter(group, non_dimension_coordinates(grid_coordinates))
    _write_coordinates(writer, layout, grid_coordinates)
    _write_data_variables(writer, layout, grid_coordinates, serializer)


class CFArrayWriter:
    """Creates arrays as xarray encodes them: dimension names, the NaN `_FillValue` attribute of
    float arrays, and a `coordinates` attribute on data variables naming the non-dimension
    coordinates that lie on their dimensions ({name: dims}, `non_dimension_coordinates`). Also the
    writer of an eval's compressed store (`satflow.eval.stores`)."""

    def __init__(self, group: zarr.Group, coordinates: dict[str, tuple[str, ...]]) -> None:
        self.group, self.coordinates = group, coordinates

    def array(self, name: str, dims: tuple[str, ...], values: np.ndarray | None = None, *, shape=None,
              dtype=None, chunks=None, attrs: dict | None = None, data_variable: bool = False, **codecs) -> None:
        shape = np.shape(values) if shape is None else shape
        dtype = np.dtype(dtype if dtype is not None else np.asarray(values).dtype)
        attributes = dict(attrs or {})
        if dtype.kind == "f":
            attributes["_FillValue"] = NAN_FILL_ATTRIBUTE
        if data_variable:
            on_dims = sorted(c for c, c_dims in self.coordinates.items() if set(c_dims) <= set(dims))
            if on_dims:
                attributes["coordinates"] = " ".join(on_dims)
        fill = {"f": np.nan, "U": "", "O": "", "T": ""}.get(dtype.kind, 0)
        array = self.group.create_array(
            name, shape=shape, dtype=str if dtype.kind in "UOT" else dtype, chunks=chunks or shape or (),
            fill_value=fill, attributes=attributes, dimension_names=dims or None, **codecs)
        if values is not None and np.size(values):
            array[...] = np.asarray(values, dtype=object) if dtype.kind in "UOT" else values


def non_dimension_coordinates(grid_coordinates: dict | None) -> dict[str, tuple[str, ...]]:
    return {name: tuple(dims) for name, (dims, _, _) in (grid_coordinates or {}).items() if (name,) != tuple(dims)}


def _time_attributes(times: np.ndarray) -> tuple[dict, str, str]:
    """CF attributes of the time axis; units as xarray writes them (a midnight reference loses its
    " 00:00:00")."""
    encoding = time_encoding(times)
    units = encoding["units"].removesuffix(" 00:00:00")
    return {**CF_ATTRIBUTES["time"], "units": units, "calendar": encoding["calendar"]}, units, encoding["calendar"]


def _write_coordinates(writer: CFArrayWriter, layout: StoreLayout, grid_coordinates: dict | None) -> None:
    n_time = len(layout.times)
    attributes, units, calendar = _time_attributes(layout.times)
    writer.array("time", ("time",), np.asarray(encode_times(layout.times, units, calendar) if n_time else [],
                                               dtype=np.int64), chunks=(max(n_time, 1),), attrs=attributes)
    writer.array("feature", ("feature",), np.asarray(layout.features, dtype=object))
    on_domain = bool(grid_coordinates) and GRID_MAPPING_NAME in grid_coordinates
    for name in ("lat", "lon"):
        attrs = {**CF_ATTRIBUTES[name], **(CF_ATTRIBUTES[f"{name}_on_domain"] if on_domain else {})}
        writer.array(name, (name,), np.asarray(getattr(layout, name), dtype=np.float64), attrs=attrs)
    for name, (dims, values, attrs) in (grid_coordinates or {}).items():
        writer.array(name, tuple(dims), np.asarray(values), attrs=attrs)
    if layout.aux_products:
        writer.array("aux_product", ("aux_product",), np.asarray(layout.aux_products, dtype=object))


def _write_data_variables(writer: CFArrayWriter, layout: StoreLayout, grid_coordinates: dict | None, serializer) -> None:
    shape, chunk_shape = layout.shape, layout.chunk_shape
    n_feature, time_chunk = shape[1], chunk_shape[0]
    grid_mapping = {"grid_mapping": GRID_MAPPING_NAME} if grid_coordinates and GRID_MAPPING_NAME in grid_coordinates else {}
    x_codecs = ({"compressors": [compressor(layout.compression_level)]} if serializer is None
                else {"serializer": serializer, "compressors": None})
    data = dict(data_variable=True)
    writer.array("X", DIMS, shape=shape, dtype=np.float32, chunks=chunk_shape,
                 attrs={**CF_ATTRIBUTES["X"], **grid_mapping}, **x_codecs, **data)
    # No _FillValue attribute on the mask: xarray would otherwise decode M == 0 to NaN.
    writer.array("M", DIMS, shape=shape, dtype=np.uint8, chunks=chunk_shape, attrs={**CF_ATTRIBUTES["M"], **grid_mapping},
                 compressors=[compressor(layout.compression_level)], **data)
    # Every time-dimensioned array is chunked like X along time: concurrent region tasks then never
    # read-modify-write the same chunk (one shared chunk lost updates).
    writer.array("ingested", ("time",), shape=(shape[0],), dtype=np.uint8, chunks=(time_chunk,),
                 attrs=CF_ATTRIBUTES["ingested"], **data)
    writer.array("source_file", ("time",), shape=(shape[0],), dtype=object, chunks=(time_chunk,),
                 attrs=CF_ATTRIBUTES["source_file"], **data)
    writer.array("units", ("feature",), np.asarray(layout.units or ("",) * n_feature, dtype=object), **data)
    for name in STEP_NAMES:  # fill values (NaN; counts 0) until a region writes its steps
        writer.array(name, ("time", "feature"), shape=(shape[0], n_feature), chunks=(time_chunk, n_feature),
                     dtype=np.int64 if name == "step_count" else np.float64, **data)
    for name in STAT_NAMES:  # zeros until finalize folds the steps
        writer.array(name, ("feature",), np.zeros(n_feature, np.int64 if name == "count" else np.float64), **data)
    if layout.aux_products:
        _write_aux_provenance(writer, layout, (shape[0], len(layout.aux_products)), (time_chunk, len(layout.aux_products)))


def _write_aux_provenance(writer: CFArrayWriter, layout: StoreLayout, shape: tuple[int, int], chunks: tuple[int, int]) -> None:
    """Per time step and auxiliary product: the file (`aux_source_file`, "" = none mapped) and the time
    (`aux_time`, NaT = none) of the auxiliary scene that filled the step's `<product>/...` features."""
    dims = ("time", "aux_product")
    writer.array("aux_source_file", dims, shape=shape, dtype=object, chunks=chunks,
                 attrs={"long_name": "auxiliary file mapped onto this time step (\"\" = none)"}, data_variable=True)
    encoding = time_encoding(layout.times)
    # Encoded numbers with CF units, so xarray decodes them like `time` (NaN -> NaT) in any calendar.
    writer.array("aux_time", dims, shape=shape, dtype=np.float64, chunks=chunks, data_variable=True,
                 attrs={"long_name": "time of the auxiliary scene mapped onto this time step (NaT = none)",
                        "units": encoding["units"], "calendar": encoding["calendar"]})


def extend_time(path: str | Path, new_times: np.ndarray) -> None:
    """Grow every time-dimensioned array by `new_times` (their cells read as fill values) and write
    the new time coordinates, encoded with the store's own units and calendar."""
    if not len(new_times):
        return
    group = open_group(path, mode="r+")
    n_old = group["time"].shape[0]
    for _, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if dims and dims[0] == "time":
            array.resize((n_old + len(new_times), *array.shape[1:]))
    time_array = group["time"]
    units, calendar = time_array.attrs["units"], time_array.attrs.get("calendar", "proleptic_gregorian")
    time_array[n_old:] = np.asarray(encode_times(as_time_array(new_times), units, calendar), dtype=time_array.dtype)
