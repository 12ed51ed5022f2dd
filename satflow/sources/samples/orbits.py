"""Which grid cells a constellation of sun-synchronous polar orbiters sees, when and how.

Geometry: circular orbits with the period of their altitude and the sun-synchronous
inclination (about 98.7 degrees, from the J2 nodal precession). A sun-synchronous plane is fixed
relative to the sun, so the work happens in a sun-fixed frame whose longitude is 15 x local
solar time: the ascending node sits at 15 x LTAN and a ground cell turns once per solar day.
For every cell and orbit revolution the pass time solves u(t) = a(t) (the satellite's argument
of latitude equals the cell's along-track angle) by a few secant steps; the cell is observed when
its cross-track angle at that time is inside the AMSU-A scan (+-48.33 deg scan angle, plus half a
beam). Of several passes inside the window, the one nearest the window centre wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_KM = 6371.0
_MU_KM3_S2 = 398600.4418
_J2 = 1.08263e-3
_EQUATORIAL_RADIUS_KM = 6378.137
_SOLAR_DAY_S = 86400.0
_YEAR_S = 365.2422 * _SOLAR_DAY_S
EPOCH = np.datetime64("2000-01-01T00:00:00", "ns")  # midnight UTC: sun-frame longitude = lon at t=0

SCAN_EDGE_DEG = 48.33  # AMSU-A outermost beam position
FOV_STEP_DEG = 10.0 / 3.0
FOV_COUNT = 30
BEAM_HALF_WIDTH_DEG = 1.65
SCAN_LINE_S = 8.0


@dataclass(frozen=True)
class PolarOrbiter:
    """A satellite carrying AMSU-A: WMO id (BUFR 001007), altitude, ascending-node local time."""

    name: str
    wmo_id: int
    altitude_km: float
    ltan_hours: float  # local solar time of the ascending node
    phase_deg: float  # argument of latitude at EPOCH
    failed_channels: tuple[int, ...] = ()  # channels whose data are rejected (1-based)

    @property
    def period_s(self) -> float:
        a = EARTH_RADIUS_KM + self.altitude_km
        return float(2.0 * np.pi * np.sqrt(a**3 / _MU_KM3_S2))

    @property
    def inclination_rad(self) -> float:
        """Inclination at which J2 turns the orbit plane once a year (sun-synchronous)."""
        a = EARTH_RADIUS_KM + self.altitude_km
        mean_motion = 2.0 * np.pi / self.period_s
        cos_i = -(2.0 / 3.0) * (2.0 * np.pi / _YEAR_S) * a**2 / (_J2 * _EQUATORIAL_RADIUS_KM**2 * mean_motion)
        return float(np.arccos(cos_i))

    @property
    def height_ratio(self) -> float:
        return (EARTH_RADIUS_KM + self.altitude_km) / EARTH_RADIUS_KM

    @property
    def half_swath_rad(self) -> float:
        """Earth-central angle from nadir to the outer edge of the outermost footprint."""
        edge = np.radians(SCAN_EDGE_DEG + BEAM_HALF_WIDTH_DEG)
        return float(np.arcsin(self.height_ratio * np.sin(edge)) - edge)


# Illustrative constellation of 2020 (node times approximate; drifts and failures as reported
# by operators in spirit: NOAA-15 lost channels 11 and 14, NOAA-19 channel 8 is too noisy).
AMSUA_CONSTELLATION = (
    PolarOrbiter("NOAA-15", 206, 807.0, 16.9, 10.0, failed_channels=(11, 14)),
    PolarOrbiter("NOAA-18", 209, 854.0, 19.4, 140.0),
    PolarOrbiter("NOAA-19", 223, 870.0, 15.2, 250.0, failed_channels=(8,)),
    PolarOrbiter("MetOp-B", 3, 817.0, 21.5, 60.0),
    PolarOrbiter("MetOp-C", 5, 817.0, 21.5, 240.0),
)


@dataclass
class Observations:
    """Per-cell result of `observe`; arrays are (lat, lon), meaningful where `observed`."""

    observed: np.ndarray  # bool
    satellite: np.ndarray  # index into the constellation, -1 where not observed
    time_s: np.ndarray  # pass time, seconds since EPOCH
    scan_angle_deg: np.ndarray  # signed, negative on the side of FOV 1
    zenith_deg: np.ndarray  # satellite zenith angle at the cell
    bearing_deg: np.ndarray  # azimuth from the cell towards the sub-satellite point, 0..360
    cross_track_rad: np.ndarray


def seconds_since_epoch(time: np.datetime64) -> float:
    return float((np.datetime64(time, "ns") - EPOCH) / np.timedelta64(1, "s"))


def observe(lat: np.ndarray, lon: np.ndarray, centre_s: float, half_window_s: float,
            constellation=AMSUA_CONSTELLATION) -> Observations:
    """Cells of the (lat, lon) grid seen within [centre - half_window, centre + half_window)."""
    cells = _Cells(lat, lon)
    best_dt = np.full(cells.size, np.inf)
    satellite = np.full(cells.size, -1, dtype=np.int16)
    cross = np.zeros(cells.size)
    along = np.zeros(cells.size)
    for index, sat in enumerate(constellation):
        for seen, dt, c, a in _passes(cells, centre_s, half_window_s, sat):
            # A cell may be seen on several revolutions and by several satellites: keep the
            # pass nearest the window centre.
            better = np.abs(dt) < np.abs(best_dt[seen])
            seen = seen[better]
            best_dt[seen], satellite[seen], cross[seen], along[seen] = dt[better], index, c[better], a[better]
    observations = _geometry(cells, centre_s + best_dt, satellite, cross, along, constellation)
    return Observations(*(field.reshape(len(lat), len(lon)) for field in observations))


class _Cells:
    """Flat per-cell coordinates and their sines/cosines, computed once for all satellites."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray):
        self.phi = np.repeat(np.radians(np.asarray(lat, np.float64)), len(lon))
        self.lam = np.tile(np.radians(np.asarray(lon, np.float64)), len(lat))
        self.sin_phi, self.cos_phi = np.sin(self.phi), np.cos(self.phi)
        self.size = self.phi.size


def _wrapped(angle):
    return np.mod(angle + np.pi, 2.0 * np.pi) - np.pi


def _passes(cells: _Cells, centre_s: float, half_window_s: float, sat: PolarOrbiter):
    """For each revolution: (cell indices, dt from centre, cross, along angles) of in-swath passes."""
    inc, spin = sat.inclination_rad, 2.0 * np.pi / _SOLAR_DAY_S
    rate = 2.0 * np.pi / sat.period_s - spin * np.cos(inc)  # d(u - a)/dt for cells near the plane
    node = np.radians(15.0 * sat.ltan_hours)
    x_centre = _wrapped(cells.lam + spin * centre_s - node)  # cell longitude from the node, sun frame
    along = np.arctan2(cells.cos_phi * np.cos(inc) * np.sin(x_centre) + cells.sin_phi * np.sin(inc),
                       cells.cos_phi * np.cos(x_centre))
    u_centre = float(_wrapped(np.radians(sat.phase_deg) + 2.0 * np.pi * centre_s / sat.period_s))
    lag = _wrapped(u_centre - along)  # pass k happens near dt = (2 pi k - lag) / rate
    # Screening in float32: sin(x at the k-th linear guess) = sin(base + k * step).
    base = (x_centre - spin * lag / rate).astype(np.float32)
    sin_base, cos_base = np.sin(base), np.cos(base)
    polar = (cells.sin_phi * np.cos(inc)).astype(np.float32)
    equatorial = (cells.cos_phi * np.sin(inc)).astype(np.float32)
    limit = np.float32(np.sin(sat.half_swath_rad) + 0.025)  # secant steps move a cell < 0.02 rad
    lag32 = lag.astype(np.float32)
    revolutions = int(np.ceil(half_window_s * rate / (2.0 * np.pi))) + 1
    for k in range(-revolutions, revolutions + 1):
        step = spin * 2.0 * np.pi * k / rate
        sin_cross = polar - equatorial * (sin_base * np.float32(np.cos(step)) + cos_base * np.float32(np.sin(step)))
        in_window = np.abs(np.float32(2.0 * np.pi * k) - lag32) < np.float32((half_window_s + 300.0) * rate)
        candidates = np.flatnonzero((np.abs(sin_cross) < limit) & in_window)
        if candidates.size:
            yield _refine(candidates, cells, x_centre[candidates], (2.0 * np.pi * k - lag[candidates]) / rate,
                          u_centre, half_window_s, sat, rate)


def _refine(candidates, cells: _Cells, x0, t, u_centre: float, half_window_s: float, sat: PolarOrbiter,
            rate: float):
    """Secant steps to the exact pass time (the cell turns slowly compared with the satellite).

    The first guess is within ~250 s and each step shrinks the error ~15-fold, so two steps give
    about a second; float32 is ample for angles already wrapped to [-pi, pi) and times of hours.
    """
    f32 = np.float32
    cos_i, sin_i = f32(np.cos(sat.inclination_rad)), f32(np.sin(sat.inclination_rad))
    spin, mean_motion = f32(2.0 * np.pi / _SOLAR_DAY_S), f32(2.0 * np.pi / sat.period_s)
    sin_phi, cos_phi = cells.sin_phi[candidates].astype(f32), cells.cos_phi[candidates].astype(f32)
    x0, t = x0.astype(f32), t.astype(f32)
    two_pi = f32(2.0 * np.pi)

    def along(x):
        return np.arctan2(cos_phi * cos_i * np.sin(x) + sin_phi * sin_i, cos_phi * np.cos(x))

    for _ in range(2):
        gap = f32(u_centre) + mean_motion * t - along(x0 + spin * t)
        t = t - (gap - two_pi * np.round(gap / two_pi)) / f32(rate)
    x = x0 + spin * t
    c = np.arcsin(np.clip(sin_phi * cos_i - cos_phi * sin_i * np.sin(x), f32(-1.0), f32(1.0)))
    seen = (np.abs(c) <= sat.half_swath_rad) & (t >= -half_window_s) & (t < half_window_s)
    a = along(x)
    return candidates[seen], t[seen].astype(np.float64), c[seen].astype(np.float64), a[seen].astype(np.float64)


def _geometry(cells: _Cells, time_s, satellite, cross, along, constellation) -> tuple[np.ndarray, ...]:
    """Scan angle, zenith and bearing of the winning pass of every observed cell (flat arrays)."""
    observed = satellite >= 0
    scan, zenith, bearing = (np.full(cells.size, np.nan) for _ in range(3))
    seen = np.flatnonzero(observed)
    sat = satellite[seen]
    ratio = np.array([s.height_ratio for s in constellation])[sat]
    inc = np.array([s.inclination_rad for s in constellation])[sat]
    node = np.radians(15.0 * np.array([s.ltan_hours for s in constellation]))[sat]
    c, a = cross[seen], along[seen]
    scan[seen] = np.arctan2(np.sin(c), ratio - np.cos(c))  # nadir angle seen from the satellite
    zenith[seen] = np.abs(scan[seen]) + np.abs(c)
    # In the node-aligned sun frame the sub-satellite point is at along-track angle a.
    x = cells.lam[seen] + 2.0 * np.pi * np.mod(time_s[seen], _SOLAR_DAY_S) / _SOLAR_DAY_S - node
    sub = (np.cos(a), np.sin(a) * np.cos(inc), np.sin(a) * np.sin(inc))
    sin_phi, cos_phi = cells.sin_phi[seen], cells.cos_phi[seen]
    toward_east = -sub[0] * np.sin(x) + sub[1] * np.cos(x)
    toward_north = -sub[0] * sin_phi * np.cos(x) - sub[1] * sin_phi * np.sin(x) + sub[2] * cos_phi
    bearing[seen] = np.degrees(np.arctan2(toward_east, toward_north)) % 360.0
    time = np.where(observed, time_s, np.nan)
    return (observed, np.where(observed, satellite, -1), time, np.degrees(scan), np.degrees(zenith), bearing,
            np.where(observed, cross, np.nan))


def fov_number(scan_angle_deg: np.ndarray) -> np.ndarray:
    """AMSU-A field-of-view number 1..30 of a scan angle."""
    fov = np.rint((scan_angle_deg + SCAN_EDGE_DEG) / FOV_STEP_DEG) + 1
    return np.clip(fov, 1, FOV_COUNT)


def footprint_spacing_km(scan_angle_deg: np.ndarray, sat_ratio: np.ndarray, period_s: np.ndarray):
    """(along-track, cross-track) distance between neighbouring footprints in km."""
    beta = np.radians(np.abs(scan_angle_deg))
    ground_speed = 2.0 * np.pi * EARTH_RADIUS_KM / period_s
    along = ground_speed * SCAN_LINE_S
    # d(central angle)/d(scan angle) from sin(zenith) = ratio * sin(scan)
    dc_dbeta = sat_ratio * np.cos(beta) / np.sqrt(np.clip(1.0 - (sat_ratio * np.sin(beta)) ** 2, 1e-6, None)) - 1.0
    cross = EARTH_RADIUS_KM * dc_dbeta * np.radians(FOV_STEP_DEG)
    return along, cross


def solar_angles(lat: np.ndarray, lon: np.ndarray, time_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(solar zenith, solar azimuth from north, clockwise) in degrees; simple declination model."""
    phi = np.radians(lat)
    day_of_year = np.mod(time_s / _SOLAR_DAY_S, 365.2422)
    declination = np.radians(-23.44) * np.cos(2.0 * np.pi * (day_of_year + 10.0) / 365.2422)
    hour_angle = np.radians(lon) + 2.0 * np.pi * np.mod(time_s, _SOLAR_DAY_S) / _SOLAR_DAY_S - np.pi
    cos_zenith = np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.cos(hour_angle)
    zenith = np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))
    azimuth = np.degrees(np.arctan2(-np.cos(declination) * np.sin(hour_angle),
                                    np.sin(declination) * np.cos(phi)
                                    - np.cos(declination) * np.sin(phi) * np.cos(hour_angle))) % 360.0
    return zenith, azimuth


def season(time_s: float) -> float:
    """+1 at the northern summer solstice, -1 at the winter solstice."""
    day_of_year = np.mod(time_s / _SOLAR_DAY_S, 365.2422)
    return float(-np.cos(2.0 * np.pi * (day_of_year + 10.0) / 365.2422))


@dataclass
class SwathGeometry:
    """Where each field of view of each scan line looks: arrays (scanline, fov), degrees."""

    lat: np.ndarray
    lon: np.ndarray
    scan_angle_deg: np.ndarray
    zenith_deg: np.ndarray
    bearing_deg: np.ndarray


def scan_angles_deg() -> np.ndarray:
    """The 30 AMSU-A beam positions, FOV 1 first (negative side)."""
    return -SCAN_EDGE_DEG + FOV_STEP_DEG * np.arange(FOV_COUNT)


def swath_geometry(sat: PolarOrbiter, time_s: np.ndarray) -> SwathGeometry:
    """Footprint centres of the scan lines taken at `time_s` (seconds since EPOCH), spherical Earth.

    The sub-satellite point moves along the orbit (argument of latitude u) in the sun-fixed frame
    of `observe`; a beam at scan angle b looks at the Earth-central angle c = asin(ratio sin b) - b
    across the track, along the orbit normal. The sign of c is that of `observe`'s cross angle.
    """
    t = np.asarray(time_s, np.float64)[:, None]
    inc, node = sat.inclination_rad, np.radians(15.0 * sat.ltan_hours)
    u = np.radians(sat.phase_deg) + 2.0 * np.pi * t / sat.period_s
    beta = np.radians(scan_angles_deg())[None, :]
    c = np.arcsin(sat.height_ratio * np.sin(beta)) - beta
    sub = (np.cos(u), np.sin(u) * np.cos(inc), np.sin(u) * np.sin(inc))
    normal = (0.0, -np.sin(inc), np.cos(inc))
    point = [np.cos(c) * s + np.sin(c) * n for s, n in zip(sub, normal)]
    phi = np.arcsin(np.clip(point[2], -1.0, 1.0))
    x = np.arctan2(point[1], point[0])  # longitude from the node in the sun frame
    lam = x + node - 2.0 * np.pi * np.mod(t, _SOLAR_DAY_S) / _SOLAR_DAY_S
    toward_east = -sub[0] * np.sin(x) + sub[1] * np.cos(x)
    toward_north = -sub[0] * np.sin(phi) * np.cos(x) - sub[1] * np.sin(phi) * np.sin(x) + sub[2] * np.cos(phi)
    shape = np.broadcast_shapes(t.shape, beta.shape)
    return SwathGeometry(
        lat=np.degrees(phi), lon=(np.degrees(lam) + 180.0) % 360.0 - 180.0,
        scan_angle_deg=np.broadcast_to(np.degrees(beta), shape).copy(),
        zenith_deg=np.broadcast_to(np.degrees(np.abs(beta) + np.abs(c)), shape).copy(),
        bearing_deg=np.degrees(np.arctan2(toward_east, toward_north)) % 360.0)
