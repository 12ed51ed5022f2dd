"""Analytic geography and seeded random weather for the sample-data generators.

Everything is a function of (lat, lon) in degrees, so that the same seed draws the same land,
terrain and weather at any resolution: random fields are drawn on a fixed 1-degree grid and
interpolated bilinearly onto the target grid.
"""

from __future__ import annotations

import functools

import numpy as np

from satflow.grid import cell_centres

# The fixed 1-degree grid on which land and weather are drawn before interpolation.
WEATHER_LAT = cell_centres(-90.0, 90.0, 1.0)
WEATHER_LON = cell_centres(-180.0, 180.0, 1.0)

# Coarse continent outlines (lon, lat): enough for land/sea contrasts in the right places.
_CONTINENTS = (
    ((-168, 66), (-162, 70), (-140, 70), (-125, 72), (-95, 72), (-80, 73), (-62, 66), (-60, 55), (-53, 47),
     (-66, 44), (-70, 41), (-76, 35), (-81, 31), (-80, 25), (-84, 30), (-90, 29), (-97, 27), (-97, 22),
     (-92, 18), (-87, 21), (-88, 16), (-83, 15), (-83, 10), (-78, 8), (-80, 7), (-85, 10), (-92, 14),
     (-105, 20), (-112, 29), (-115, 30), (-118, 34), (-124, 40), (-124, 48), (-135, 57), (-150, 60),
     (-165, 60)),  # North and Central America
    ((-78, 8), (-72, 12), (-62, 10), (-50, 2), (-35, -5), (-39, -15), (-48, -26), (-58, -35), (-65, -41),
     (-68, -52), (-72, -54), (-75, -45), (-73, -35), (-71, -25), (-70, -18), (-76, -14), (-81, -5), (-80, 0)),
    ((-17, 21), (-10, 30), (-6, 36), (10, 37), (20, 32), (32, 31), (35, 27), (43, 12), (51, 12), (40, -2),
     (40, -15), (35, -24), (27, -34), (20, -35), (17, -29), (12, -17), (13, -7), (9, -1), (9, 4), (-8, 5),
     (-15, 11), (-17, 15)),  # Africa
    ((-10, 36), (-9, 43), (-2, 44), (-5, 48), (2, 51), (8, 54), (10, 57), (5, 62), (15, 69), (28, 71),
     (40, 67), (60, 70), (70, 73), (80, 73), (100, 78), (115, 73), (140, 72), (160, 70), (180, 69),
     (180, 65), (170, 60), (160, 55), (156, 51), (143, 59), (135, 55), (140, 48), (130, 42), (127, 38),
     (122, 40), (122, 30), (110, 21), (108, 12), (105, 9), (100, 13), (99, 7), (103, 1), (98, 16), (92, 22),
     (87, 21), (80, 15), (77, 8), (73, 17), (70, 22), (62, 25), (57, 25), (56, 27), (50, 30), (48, 29),
     (51, 24), (56, 26), (59, 22), (52, 16), (45, 13), (43, 13), (39, 21), (35, 28), (36, 36), (30, 36),
     (26, 40), (22, 37), (20, 40), (15, 38), (12, 44), (8, 44), (3, 43), (-1, 37), (-6, 36)),  # Eurasia
    ((114, -22), (122, -18), (130, -12), (137, -12), (142, -11), (146, -19), (153, -26), (151, -33),
     (146, -39), (140, -38), (135, -35), (130, -32), (120, -34), (115, -34), (114, -26)),  # Australia
    ((-73, 78), (-60, 82), (-30, 83), (-20, 80), (-20, 70), (-40, 63), (-50, 62), (-55, 70), (-70, 77)),
    ((-6, 50), (2, 51), (0, 58), (-6, 58)), ((130, 31), (140, 35), (142, 44), (140, 42), (133, 34)),
    ((109, 2), (118, 7), (119, -4), (110, -3)), ((131, -1), (150, -6), (142, -9), (135, -4)),
    ((95, 5), (106, -6), (102, -5), (95, 2)), ((44, -25), (47, -25), (50, -15), (49, -12), (44, -16)),
    ((166, -46), (174, -41), (178, -38), (173, -35), (168, -44)),
)
# (centre lat, centre lon, half-extent lat, half-extent lon, height in m)
_MOUNTAINS = (
    (32, 86, 5, 14, 5000), (-18, -68, 14, 3, 4000), (42, -110, 12, 7, 2200), (-80, 30, 12, 120, 2800),
    (73, -40, 7, 9, 2500), (45, 8, 3, 5, 1800), (-5, 37, 8, 5, 1400),
)


def _blobs(lat: np.ndarray, lon: np.ndarray, shapes) -> list[np.ndarray]:
    """exp(-distance^2) of each (lat0, lon0, half_lat, half_lon, ...) shape on the grid.

    Separable in latitude and longitude, so each blob costs one outer product.
    """
    lat, lon = np.asarray(lat, np.float32), np.asarray(lon, np.float32)
    out = []
    for lat0, lon0, half_lat, half_lon, *_ in shapes:
        dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
        out.append(np.outer(np.exp(-(((lat - lat0) / half_lat) ** 2)), np.exp(-((dlon / half_lon) ** 2))))
    return out


def land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Boolean (lat, lon): True over land (about 30% of the globe, Antarctica included)."""
    land = to_grid(_land_fraction()[None], lat, lon)[0] > 0.5
    lon2 = np.radians(np.asarray(lon, np.float64))[None, :]
    return land | (np.asarray(lat)[:, None] < -71.0 + 3.0 * np.sin(2 * lon2) + 2.0 * np.sin(5 * lon2))


@functools.lru_cache(maxsize=1)
def _land_fraction() -> np.ndarray:
    """Continents rasterised on the 1-degree grid (even-odd rule), slightly smoothed."""
    lon, lat = np.meshgrid(WEATHER_LON, WEATHER_LAT)
    inside = np.zeros(lon.shape, bool)
    for outline in _CONTINENTS:
        x = np.array([p[0] for p in outline], np.float64)
        y = np.array([p[1] for p in outline], np.float64)
        x2, y2 = np.roll(x, -1), np.roll(y, -1)
        polygon = np.zeros(lon.shape, bool)
        for x1, y1, xe, ye in zip(x, y, x2, y2):
            crosses = (y1 > lat) != (ye > lat)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = x1 + (lat - y1) * (xe - x1) / (ye - y1)
            polygon ^= crosses & (lon < x_at)
        inside |= polygon
    return smooth(inside.astype(np.float64), 0.7)


def smooth(field: np.ndarray, sigma_deg: float) -> np.ndarray:
    """Gaussian blur of a 1-degree field (periodic FFT filter)."""
    ky = np.fft.fftfreq(field.shape[0])[:, None]
    kx = np.fft.rfftfreq(field.shape[1])[None, :]
    return np.fft.irfft2(np.fft.rfft2(field) * np.exp(-2.0 * (np.pi * sigma_deg) ** 2 * (kx**2 + ky**2)), s=field.shape)


def surface_height(lat: np.ndarray, lon: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Terrain height in m (0 over sea): mountain ranges on a 300 m continental base."""
    relief = sum(height * blob for blob, (*_, height) in zip(_blobs(lat, lon, _MOUNTAINS), _MOUNTAINS))
    return np.where(land, 300.0 + relief, 0.0).astype(np.float32)


def coast_mask(land: np.ndarray) -> np.ndarray:
    """Cells whose land/sea state differs from one of their four neighbours (lon wraps)."""
    coast = np.zeros_like(land)
    for axis, shift in ((1, 1), (1, -1), (0, 1), (0, -1)):
        neighbour = np.roll(land, shift, axis=axis)
        if axis == 0:  # latitude does not wrap
            neighbour[0 if shift == 1 else -1] = land[0 if shift == 1 else -1]
        coast |= neighbour != land
    return coast


# --- random fields -----------------------------------------------------------------------------


def correlated_noise(rng: np.random.Generator, count: int, length_deg: float) -> np.ndarray:
    """`count` unit-variance Gaussian fields on the 1-degree grid with a correlation length in degrees."""
    white = rng.standard_normal((count, WEATHER_LAT.size, WEATHER_LON.size))
    fields = np.stack([smooth(field, length_deg) for field in white])
    return fields / fields.std(axis=(1, 2), keepdims=True)


def evolve(previous: np.ndarray, rng: np.random.Generator, length_deg: float, *, memory: float = 0.8,
           shift_deg: int = 4) -> np.ndarray:
    """Next state of weather fields: advected eastward, then an AR(1) blend with fresh noise."""
    fresh = correlated_noise(rng, previous.shape[0], length_deg)
    return memory * np.roll(previous, shift_deg, axis=2) + np.sqrt(1.0 - memory**2) * fresh


def to_grid(fields: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of (n, 180, 360) 1-degree fields onto (n, lat, lon); longitude wraps."""
    rows = np.clip(np.asarray(lat, np.float64) - WEATHER_LAT[0], 0.0, WEATHER_LAT.size - 1.0)
    r0 = np.minimum(rows.astype(int), WEATHER_LAT.size - 2)
    wr = (rows - r0).astype(np.float32)[:, None]
    cols = np.mod(np.asarray(lon, np.float64) - WEATHER_LON[0], 360.0)
    c0 = cols.astype(int) % WEATHER_LON.size
    c1 = (c0 + 1) % WEATHER_LON.size
    wc = (cols - np.floor(cols)).astype(np.float32)[None, :]
    out = np.empty((fields.shape[0], len(lat), len(lon)), np.float32)
    for i, field in enumerate(fields.astype(np.float32)):
        north_south = field[r0] * (1 - wr) + field[r0 + 1] * wr
        out[i] = north_south[:, c0] * (1 - wc) + north_south[:, c1] * wc
    return out
