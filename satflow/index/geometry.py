"""Patch geometry on a store's grid: origins, footprints (with longitude wrap), bounds and centres.

A patch is a selector, not a copy: `(y0, x0, height, width)` in grid cells. On a global grid
(longitude covers 360 degrees) a patch may run past the last column and continue at column 0;
its footprint is then two column intervals. Everything here is plain numpy on coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PatchGrid:
    """The candidate patches of a grid: origins every `stride` cells, full patches only."""

    ny: int
    nx: int
    height: int
    width: int
    stride_y: int
    stride_x: int
    wrap: bool = False

    def __post_init__(self) -> None:
        if self.height > self.ny or self.width > self.nx:
            raise ValueError(
                f"patch {self.height}x{self.width} does not fit the {self.ny}x{self.nx} grid; "
                "lower index.patch_size (--patch-size)"
            )

    @classmethod
    def square(cls, ny: int, nx: int, patch_size: int, stride: int, wrap: bool = False) -> PatchGrid:
        return cls(ny, nx, patch_size, patch_size, stride, stride, wrap)

    @classmethod
    def from_dict(cls, data: dict) -> PatchGrid:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return {key: (bool(v) if isinstance(v, (bool, np.bool_)) else int(v)) for key, v in asdict(self).items()}

    @property
    def origins_y(self) -> np.ndarray:
        return np.arange(0, self.ny - self.height + 1, self.stride_y, dtype=np.int64)

    @property
    def origins_x(self) -> np.ndarray:
        last = self.nx if self.wrap else self.nx - self.width + 1
        return np.arange(0, last, self.stride_x, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of patch origins along (lat, lon)."""
        return len(self.origins_y), len(self.origins_x)

    def intervals(self, axis: str, origins: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Footprint of each origin along `axis` ('y' or 'x') as two half-open cell intervals.

        The second interval is empty unless the patch wraps past the last longitude.
        """
        if axis == "y":
            lo = self.origins_y if origins is None else np.asarray(origins, dtype=np.int64)
            return lo, lo + self.height, np.zeros_like(lo), np.zeros_like(lo)
        lo = self.origins_x if origins is None else np.asarray(origins, dtype=np.int64)
        end = lo + self.width
        return lo, np.minimum(end, self.nx), np.zeros_like(lo), np.maximum(end - self.nx, 0)

    def block_membership(self, axis: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """How the cells [start, stop) of one chunk fall into patch footprints along `axis`.

        Returns (patch indices that touch the chunk, segment starts relative to `start`, and a 0/1
        matrix patch x segment). Segments cut the chunk at every footprint edge, so each segment
        lies wholly inside or outside each footprint: summing segments is exact.
        """
        lo1, hi1, lo2, hi2 = self.intervals(axis)
        a1, b1 = np.clip(lo1, start, stop), np.clip(hi1, start, stop)
        a2, b2 = np.clip(lo2, start, stop), np.clip(hi2, start, stop)
        touching = np.flatnonzero((b1 > a1) | (b2 > a2))
        a1, b1, a2, b2 = a1[touching], b1[touching], a2[touching], b2[touching]
        edges = np.unique(np.concatenate([[start, stop], a1, b1, a2, b2]))
        seg_lo, seg_hi = edges[:-1], edges[1:]
        inside = ((seg_lo >= a1[:, None]) & (seg_hi <= b1[:, None]) & (b1 > a1)[:, None]) | (
            (seg_lo >= a2[:, None]) & (seg_hi <= b2[:, None]) & (b2 > a2)[:, None]
        )
        return touching, seg_lo - start, inside.astype(np.int64)


def patch_ids(y0, x0, height, width) -> np.ndarray:
    """Stable, readable ids: the same location and size always get the same id."""
    return np.array([f"p{h}x{w}-y{y}-x{x}" for y, x, h, w in zip(y0, x0, np.broadcast_to(height, np.shape(y0)),
                                                                     np.broadcast_to(width, np.shape(y0)))],
                    dtype=object)


def is_global_lon(lon: np.ndarray) -> bool:
    """True when the longitudes (regular spacing) cover the full circle, so patches may wrap."""
    lon = np.asarray(lon, dtype=np.float64)
    if lon.size < 2:
        return False
    step = float(np.median(np.diff(lon)))
    return bool(abs(abs(lon[-1] - lon[0] + step) - 360.0) < 1e-3 * abs(step))


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges from cell centres: midpoints inside, half a spacing beyond the ends."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def wrap_lon(lon, base: float, *, upper_closed: bool = False) -> np.ndarray:
    """Longitudes into [base, base + 360) (or (base, base + 360] for eastern edges)."""
    lon = np.asarray(lon, dtype=np.float64)
    wrapped = (lon - base) % 360.0 + base
    if upper_closed:
        wrapped = np.where(wrapped == base, base + 360.0, wrapped)
    return wrapped


def lon_midpoint(lon0, lon1, base: float = -180.0) -> np.ndarray:
    """Dateline-safe midpoint of the eastward arc from lon0 to lon1 (degrees, in [base, base+360))."""
    lon0 = np.asarray(lon0, dtype=np.float64)
    span = (np.asarray(lon1, dtype=np.float64) - lon0) % 360.0
    return wrap_lon(lon0 + span / 2, base)


def lon_base(lon: np.ndarray) -> float:
    """The longitude convention of a grid: 0 for 0..360 grids, -180 otherwise."""
    return 0.0 if float(np.min(lon)) >= 0.0 and float(np.max(lon)) > 180.0 else -180.0


@dataclass(frozen=True)
class PatchBounds:
    """Geographic bounds (cell edges) and centres of patches, dateline-safe on global grids."""

    lat0: np.ndarray  # southern edge
    lat1: np.ndarray  # northern edge
    lon0: np.ndarray  # western edge
    lon1: np.ndarray  # eastern edge (< lon0 when the patch crosses the dateline)
    lat_c: np.ndarray
    lon_c: np.ndarray


def patch_bounds(lat: np.ndarray, lon: np.ndarray, grid: PatchGrid, y0: np.ndarray, x0: np.ndarray) -> PatchBounds:
    """Bounds of patches with origins (y0, x0) on a grid with these cell-centre coordinates."""
    lat_edges, lon_edges = cell_edges(lat), cell_edges(lon)
    south, north = lat_edges[y0], lat_edges[y0 + grid.height]
    lat0, lat1 = np.minimum(south, north), np.maximum(south, north)
    if grid.wrap:
        step = (lon_edges[-1] - lon_edges[0]) / grid.nx
        base = lon_base(lon)
        west = lon_edges[x0]
        lon0 = wrap_lon(west, base)
        lon1 = wrap_lon(west + grid.width * step, base, upper_closed=True)
        lon_c = wrap_lon(west + grid.width * step / 2, base)
    else:
        lon0, lon1 = lon_edges[x0], lon_edges[x0 + grid.width]
        lon_c = (lon0 + lon1) / 2
    return PatchBounds(lat0, lat1, lon0, lon1, (lat0 + lat1) / 2, lon_c)


def in_lon_range(lon, lon_min: float, lon_max: float) -> np.ndarray:
    """Longitudes inside [lon_min, lon_max]; lon_min > lon_max means the range crosses the dateline."""
    lon = wrap_lon(lon, -180.0)
    lo, hi = wrap_lon(lon_min, -180.0), wrap_lon(lon_max, -180.0, upper_closed=True)
    if lon_max - lon_min >= 360.0:
        return np.ones(np.shape(lon), dtype=bool)
    return (lon >= lo) & (lon <= hi) if lo <= hi else (lon >= lo) | (lon <= hi)
