"""Read one patch (or one feature's field) straight from the store's Zarr arrays.

Patch reads bypass xarray and dask: a patch is a handful of chunk reads, and per-item overhead
matters in a DataLoader. The Zarr group is opened lazily and re-opened after a fork, so one
reader can be pickled into DataLoader or Dask workers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from satflow.index.projection import DomainAxes


class PatchReader:
    """Slices `X` of a store: (feature, height, width) float32 patches, longitude wrap included."""

    def __init__(self, store: str | Path, features: list[str] | None = None):
        from satflow.store import open_group

        self.store = str(store)
        group = open_group(self.store)
        names = [str(f) for f in np.asarray(group["feature"][:])]
        self.all_features = names
        self.features = list(features) if features is not None else names
        missing = [f for f in self.features if f not in names]
        if missing:
            raise ValueError(f"{store}: no feature(s) {missing}; the store has {names}")
        self.feature_index = np.array([names.index(f) for f in self.features], dtype=np.int64)
        self.lat = np.asarray(group["lat"][:], dtype=np.float64)
        self.lon = np.asarray(group["lon"][:], dtype=np.float64)
        self.nx = self.lon.size
        # On a local domain the 1-D lat/lon are the central column/row only: cells are located by y/x and 2-D
        # latitude/longitude (small: one domain's cells), read once here.
        self.domain = DomainAxes.of_group(group)
        if self.domain is not None:
            self.latitude = np.asarray(group["latitude"][:], dtype=np.float64)
            self.longitude = np.asarray(group["longitude"][:], dtype=np.float64)
        lo, hi = int(self.feature_index.min()), int(self.feature_index.max()) + 1
        # Read one contiguous feature range (one request per chunk), then pick the wanted ones.
        self._feature_slice, self._pick = slice(lo, hi), self.feature_index - lo
        self._group = None
        self._pid = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_group"], state["_pid"] = None, None
        return state

    @property
    def group(self):
        if self._group is None or self._pid != os.getpid():
            from satflow.store import open_group

            self._group, self._pid = open_group(self.store), os.getpid()
        return self._group

    def statistics(self) -> dict[str, np.ndarray]:
        """Per-feature store statistics (count/mean/std/min/max) of the selected features."""
        return {name: np.asarray(self.group[name][:])[self.feature_index] for name in
                ("count", "mean", "std", "min", "max")}

    def columns(self, x0: int, width: int) -> list[slice]:
        """Column slices of a patch: one, or two when it wraps past the last longitude."""
        end = x0 + width
        return [slice(x0, end)] if end <= self.nx else [slice(x0, self.nx), slice(0, end - self.nx)]

    def read(self, t: int, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """X[t, features, y0:y0+height, x0:x0+width] (wrapping in longitude) as float32."""
        array = self.group["X"]
        rows = slice(y0, y0 + height)
        parts = [array[t, self._feature_slice, rows, cols] for cols in self.columns(x0, width)]
        block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return np.ascontiguousarray(block[self._pick], dtype=np.float32)

    def field(self, t: int, feature: str) -> np.ndarray:
        """One feature's whole (lat, lon) field at time index t."""
        return np.asarray(self.group["X"][t, self.all_features.index(feature)], dtype=np.float32)

    def domain_coords(self, y0: int, x0: int, height: int, width: int) -> dict[str, np.ndarray]:
        """On a local domain: a patch's cell centres `y_m` (height,) and `x_m` (width,) in metres, and their `lat`,
        `lon` (height, width) in degrees."""
        if self.domain is None:
            raise ValueError(f"{self.store}: not on a local domain (no grid mapping on X); use coords()")
        rows, cols = slice(y0, y0 + height), slice(x0, x0 + width)
        return {"y_m": self.domain.y[rows].copy(), "x_m": self.domain.x[cols].copy(),
                "lat": self.latitude[rows, cols].copy(), "lon": self.longitude[rows, cols].copy()}

    def coords(self, y0: int, x0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre latitudes (height,) and longitudes (width,) of a patch (on a local domain: of the domain's
        central column and row; `domain_coords` locates its cells)."""
        lon = np.concatenate([self.lon[cols] for cols in self.columns(x0, width)])
        return self.lat[y0:y0 + height].copy(), lon
