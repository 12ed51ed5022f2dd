"""A local Cartesian target grid: Lambert azimuthal equal-area around a centre, cells in metres.

`DomainGrid.from_config(source.domain)` builds cell centres `x` (west to east) and `y` (south to
north) in metres, their 2-D latitude/longitude through pyproj, and the CF grid mapping attributes
(`CRS.to_cf()`), so the projection is described the way projected inputs describe theirs.

The store keeps its `lat`/`lon` dimension names (index and dataset read 1-D `lat`/`lon`): on a
domain, `lat` holds the latitude along the central column (x = 0) and `lon` the longitude along
the central row (y = 0), both ascending; `y`/`x` (metres), the 2-D `latitude`/`longitude` and
the `crs` grid mapping are extra coordinates on those dimensions (see `domain_coordinates`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pyproj

from satflow.grid import unwrap_longitudes, wrap_longitude

if TYPE_CHECKING:  # DomainConfig's validator builds a DomainGrid: a runtime import would be a cycle
    from satflow.sources.options import DomainConfig

GRID_MAPPING_NAME = "crs"


@dataclass(frozen=True)
class DomainGrid:
    config: DomainConfig
    lon_convention: str = "-180..180"

    @classmethod
    def from_config(cls, config: DomainConfig, lon_convention: str = "-180..180") -> DomainGrid:
        return cls(config, lon_convention)  # the config validated its axes (check_axes)

    @cached_property
    def crs(self) -> pyproj.CRS:
        return pyproj.CRS.from_cf({
            "grid_mapping_name": "lambert_azimuthal_equal_area",
            "latitude_of_projection_origin": self.config.central_latitude,
            "longitude_of_projection_origin": float(wrap_longitude(self.config.central_longitude)),
            "false_easting": 0.0, "false_northing": 0.0,
        })

    @cached_property
    def x(self) -> np.ndarray:
        return _centres(self.config.l_zonal, self.config.resolution)

    @cached_property
    def y(self) -> np.ndarray:
        return _centres(self.config.l_meridional, self.config.resolution)

    @cached_property
    def lat_lon_2d(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of every cell centre, (y, x); longitudes in `lon_convention`."""
        return self._geographic(self.x, self.y)

    @cached_property
    def lat(self) -> np.ndarray:
        """Latitude along the central column: the store's 1-D `lat` (ascending)."""
        lat, _ = self._geographic(_middle(self.x), self.y)  # the central lines only: config validation uses them
        return lat.mean(axis=1)

    @cached_property
    def lon(self) -> np.ndarray:
        """Longitude along the central row: the store's 1-D `lon` (ascending, unwrapped past the seam)."""
        _, lon = self._geographic(self.x, _middle(self.y))
        return unwrap_longitudes(np.unwrap(lon, period=360.0, axis=1).mean(axis=0))

    def _geographic(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        to_geographic = pyproj.Transformer.from_crs(self.crs, self.crs.geodetic_crs, always_xy=True)
        lon, lat = to_geographic.transform(*np.meshgrid(x, y))
        return np.asarray(lat), np.asarray(wrap_longitude(np.asarray(lon), self.lon_convention))

    def check_axes(self) -> None:
        """A domain over a pole has no ascending latitude column or longitude row: refuse it by name."""
        for name, axis in (("latitude", self.lat), ("longitude", self.lon)):
            if axis.size > 1 and not np.all(np.diff(axis) > 0):
                raise ValueError(f"the domain centred at ({self.config.central_latitude:g}, "
                                 f"{self.config.central_longitude:g}) spans a pole: its {name} does not increase "
                                 "across the domain; move the centre or shrink l_zonal/l_meridional")

    def grid_mapping_attrs(self) -> dict:
        return {key: value for key, value in self.crs.to_cf().items() if key != "crs_wkt"} | \
            {"crs_wkt": self.crs.to_wkt()}


def _centres(length: float, resolution: float) -> np.ndarray:
    n = int(round(length / resolution))
    return (np.arange(n) - (n - 1) / 2.0) * resolution


def _middle(centres: np.ndarray) -> np.ndarray:
    """The middle centre, or the two middle ones of an even count (their mean is the domain's centre line)."""
    n = centres.size
    return centres[[(n - 1) // 2, n // 2]]


def domain_coordinates(config: DomainConfig, lon_convention: str = "-180..180") -> dict:
    """The store's extra coordinates of a domain: {name: (dims, values, attrs)}."""
    grid = DomainGrid.from_config(config, lon_convention)
    lat, lon = grid.lat_lon_2d
    return {
        "y": (("lat",), grid.y, {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y",
                                 "long_name": "northing of the cell centre in the domain's projection"}),
        "x": (("lon",), grid.x, {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X",
                                 "long_name": "easting of the cell centre in the domain's projection"}),
        "latitude": (("lat", "lon"), lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "longitude": (("lat", "lon"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        GRID_MAPPING_NAME: ((), np.int32(0), grid.grid_mapping_attrs()),
    }

