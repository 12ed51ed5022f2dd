"""Tiny stores for the index tests: a global grid (patches wrap) with chunks that patches straddle."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from satflow.store import write_store_from_arrays

TIMES = np.datetime64("2020-01-01T00:00", "ns") + np.arange(5) * np.timedelta64(6, "h")
FEATURES = ["tmbrs-1", "tmbrs-2", "tmbrs-15"]


def random_cube(shape, seed: int, nan_fraction: float = 0.3) -> np.ndarray:
    """Feature-dependent values with NaN holes that differ per feature and time."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    values += (200.0 + 20.0 * np.arange(shape[1]))[None, :, None, None]
    values[rng.random(shape) < nan_fraction] = np.nan
    return values


@dataclass
class Store:
    """A test store and what was written into it."""

    path: Path
    values: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    chunks: dict
    times: np.ndarray = field(default_factory=lambda: TIMES)
    features: list = field(default_factory=lambda: list(FEATURES))

    def write(self, values: np.ndarray | None = None) -> Store:
        if values is not None:
            self.values = values
        write_store_from_arrays(self.path, self.values, times=self.times, features=self.features,
                                lat=self.lat, lon=self.lon, chunks=self.chunks)
        return self

    def copy_to(self, path: Path) -> Store:
        shutil.copytree(self.path, path)
        return Store(path, self.values.copy(), self.lat, self.lon, self.chunks)


@pytest.fixture(scope="session")
def global_store(tmp_path_factory) -> Store:
    """5 steps, 3 features, 12 x 24 global grid (15 degrees, patches wrap), chunks 5 x 7."""
    values = random_cube((5, 3, 12, 24), seed=1)
    values[2, :, :6, :8] = np.nan  # an empty corner at t=2
    return Store(tmp_path_factory.mktemp("stores") / "global.zarr", values, np.linspace(-82.5, 82.5, 12),
                 -172.5 + 15.0 * np.arange(24), {"time": 2, "feature": -1, "lat": 5, "lon": 7}).write()


@pytest.fixture(scope="session")
def regional_store(tmp_path_factory) -> Store:
    """5 steps, 3 features, 10 x 14 regional grid (no wrap), chunks 4 x 6 and 2 features."""
    values = random_cube((5, 3, 10, 14), seed=2)
    return Store(tmp_path_factory.mktemp("stores") / "regional.zarr", values, np.linspace(10.5, 19.5, 10),
                 np.linspace(100.5, 113.5, 14), {"time": 1, "feature": 2, "lat": 4, "lon": 6}).write()
