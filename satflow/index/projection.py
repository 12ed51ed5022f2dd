"""Patches of a store on a local domain: bounds in metres and in degrees from the recorded projection.

A store written on a local domain (`ingest.source.domain`) keeps its `(lat, lon)` dimensions, but its
1-D `lat`/`lon` are only the domain's central column and row. What locates a cell is `y`/`x`
(metres, cell centres, on the `lat`/`lon` dimensions), the 2-D `latitude`/`longitude`, and the
CF grid mapping that `X.attrs["grid_mapping"]` names. Here a patch's metre bounds are the cell edges
of `y`/`x`; its degree bounds are the extremes of the cell corners' latitude/longitude (the
corners mapped through the grid mapping with pyproj, the way the store's 2-D coordinates were made),
and its centre is the geographic position of its centre in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from satflow.index.geometry import PatchBounds, PatchGrid, cell_edges, lon_base, wrap_lon

METRE_COLUMNS = ("x_min_m", "x_max_m", "y_min_m", "y_max_m")


@dataclass(frozen=True, eq=False)
class DomainAxes:
    """Cell centres in metres (ascending) and the CF grid mapping of a store on a local domain."""

    y: np.ndarray
    x: np.ndarray
    grid_mapping: dict
    lon_base: float  # -180 or 0: the convention of the store's longitudes

    @classmethod
    def of_dataset(cls, ds) -> DomainAxes | None:
        """From `open_store(path)`; None for a store on a regular lat/lon grid."""
        name = ds["X"].attrs.get("grid_mapping") or ds["X"].encoding.get("grid_mapping")
        if not name:
            return None
        return cls._checked(name, ds, ds["y"].values if "y" in ds else None, ds["x"].values if "x" in ds else None,
                            ds[name].attrs if name in ds else None,
                            ds["longitude"].values if "longitude" in ds else None)

    @classmethod
    def of_group(cls, group) -> DomainAxes | None:
        """From the store's Zarr group (`satflow.store.open_group`); None on a regular lat/lon grid."""
        name = group["X"].attrs.get("grid_mapping")
        if not name:
            return None
        names = set(group.array_keys())
        read = (lambda key: np.asarray(group[key][:]) if key in names else None)
        return cls._checked(name, group, read("y"), read("x"), dict(group[name].attrs) if name in names else None,
                            read("longitude"))

    @classmethod
    def _checked(cls, name: str, where, y, x, attrs, longitude) -> DomainAxes:
        missing = [key for key, value in (("y", y), ("x", x), (name, attrs), ("longitude", longitude))
                   if value is None]
        if missing:
            raise ValueError(f"store names the grid mapping '{name}' on X but lacks {', '.join(missing)}: it was not "
                             "written by `satflow ingest` on a local domain; re-ingest it")
        return cls(np.asarray(y, np.float64), np.asarray(x, np.float64), _plain(attrs), lon_base(longitude))

    def transformer(self):
        """Projection metres -> (lon, lat) degrees."""
        import pyproj

        crs = pyproj.CRS.from_cf(self.grid_mapping)
        return pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)

    def metadata(self) -> dict:
        """What the index records about the projection (JSON)."""
        return {"grid_mapping": self.grid_mapping, "x_step_m": _step(self.x), "y_step_m": _step(self.y),
                "bounds_columns": list(METRE_COLUMNS)}


def domain_patch_bounds(axes: DomainAxes, grid: PatchGrid, y0: np.ndarray, x0: np.ndarray):
    """(PatchBounds in degrees, {metre column: values}) of the patches with origins (y0, x0)."""
    y_edges, x_edges = cell_edges(axes.y), cell_edges(axes.x)
    y_ends, x_ends = y_edges[y0 + grid.height], x_edges[x0 + grid.width]
    metres = {"x_min_m": np.minimum(x_edges[x0], x_ends), "x_max_m": np.maximum(x_edges[x0], x_ends),
              "y_min_m": np.minimum(y_edges[y0], y_ends), "y_max_m": np.maximum(y_edges[y0], y_ends)}
    to_geographic = axes.transformer()
    corner_lon, corner_lat = (np.asarray(a) for a in to_geographic.transform(*np.meshgrid(x_edges, y_edges)))
    # Longitudes relative to the domain's centre are continuous (a domain never spans a pole), also across
    # the dateline; they are wrapped back into the store's convention once the extremes are known.
    centre_lon = np.asarray(to_geographic.transform(np.mean(axes.x), np.mean(axes.y))[0])
    relative_lon = wrap_lon(corner_lon - centre_lon, -180.0)
    window = (grid.height + 1, grid.width + 1)  # a patch's corner nodes
    lat0, lat1 = (_window_extreme(corner_lat, window, reduce)[y0, x0] for reduce in (np.min, np.max))
    west, east = (_window_extreme(relative_lon, window, reduce)[y0, x0] + centre_lon for reduce in (np.min, np.max))
    lon_c, lat_c = (np.asarray(a) for a in to_geographic.transform((metres["x_min_m"] + metres["x_max_m"]) / 2,
                                                                     (metres["y_min_m"] + metres["y_max_m"]) / 2))
    base = axes.lon_base
    bounds = PatchBounds(lat0, lat1, wrap_lon(west, base), wrap_lon(east, base, upper_closed=True), lat_c,
                         wrap_lon(lon_c, base))
    return bounds, metres


def _window_extreme(values: np.ndarray, window: tuple[int, int], reduce) -> np.ndarray:
    """The extreme of every (rows, cols) window, indexed by its first row and column: two 1-D passes, so memory
    stays the size of the grid whatever the patch size."""
    along_x = reduce(sliding_window_view(values, window[1], axis=1), axis=-1)
    return reduce(sliding_window_view(along_x, window[0], axis=0), axis=-1)


def _step(centres: np.ndarray) -> float:
    return float(np.median(np.diff(centres))) if centres.size > 1 else 0.0


def _plain(attrs) -> dict:
    """Grid mapping attributes as JSON values (numpy scalars and arrays turned into Python ones)."""
    return {str(key): value.tolist() if isinstance(value, np.ndarray) else
            value.item() if isinstance(value, np.generic) else value for key, value in dict(attrs).items()}
