"""Config section `ingest.source` (owned by satflow.sources): how inputs are read onto the target grid.

`SourceConfig` holds the options every source kind shares and the sub-sections of particular kinds
(`swath`, `domain`, `regrid`). Its `kind` is checked against the registry of `satflow.sources.kinds`,
and each kind's own rules (regrid needs `domain`, no other kind may set it) come from there.
`AuxProductConfig` is one `ingest.aux_products.<name>` entry: a second source co-located in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from satflow.options import Section
from satflow.sources.kinds import check_kind_options, kind_help, known_kind


class CropBox(Section):
    lat_min: float = Field(-90.0, ge=-90, le=90)
    lat_max: float = Field(90.0, ge=-90, le=90)
    lon_min: float = -180.0
    lon_max: float = 180.0

    @model_validator(mode="after")
    def _ordered(self) -> CropBox:
        if self.lat_min >= self.lat_max:
            raise ValueError(f"lat_min ({self.lat_min}) must be below lat_max ({self.lat_max})")
        return self


class SwathConfig(Section):
    """`ingest.source.swath`: raw swaths binned onto a regular lat/lon grid per time window."""

    resolution: float = Field(1.0, gt=0, le=90, description="grid spacing in degrees; must tile 180 and 360")
    window_hours: float = Field(6.0, gt=0, le=24, description="time window per store step; must divide 24 h")
    window_offset_hours: float = Field(0.0, ge=0, lt=24, description="a window centre (hour of day, UTC); "
                                       "windows are [centre - window/2, centre + window/2)")
    count_name: str = Field("channels", description="features counting the valid observations per cell and "
                            "channel of the first channel variable (the gridded AMSU-A product's `channels`)")

    @model_validator(mode="after")
    def _tiles(self) -> SwathConfig:
        for span in (180.0, 360.0):
            if abs(span / self.resolution - round(span / self.resolution)) > 1e-9:
                raise ValueError(f"resolution {self.resolution} does not tile {span:g} degrees into whole cells")
        if abs(24.0 / self.window_hours - round(24.0 / self.window_hours)) > 1e-9:
            raise ValueError(f"window_hours {self.window_hours} must divide 24 (e.g. 1, 3, 6, 12, 24)")
        return self


class TimeInterval(Section):
    start: str = Field(description="ISO time, inclusive")
    end: str = Field(description="ISO time, exclusive")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_text(cls, value):
        """YAML reads an unquoted 2020-01-01 as a date: keep it as ISO text."""
        return value.isoformat() if hasattr(value, "isoformat") else value


_ISO_TIME = re.compile(r"^\s*(-?\d{1,4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?)?)?)?\s*$")


def _iso_parts(text: str) -> tuple[int, ...] | None:
    match = _ISO_TIME.match(str(text))
    return None if match is None else tuple(int(g) if g else d for g, d in zip(match.groups(), (0, 1, 1, 0, 0, 0)))


class TimeSelection(Section):
    """`ingest.source.time_selection`: which time steps enter the store (all filters must pass)."""

    intervals: list[TimeInterval] = Field(default_factory=list, description="keep times inside any interval")
    hours: list[int] = Field(default_factory=list, description="keep these UTC hours of day (0-23)")
    N_hours_from_zenith: float | None = Field(None, ge=0, le=12, description="keep times within this many hours "
                                              "of local solar noon at solar_longitude (convml_tt's filter)")
    solar_longitude: float | None = Field(None, ge=-360, le=360, description="longitude of local solar noon; "
                                          "default: the centre of the grid's longitudes")

    @field_validator("hours")
    @classmethod
    def _hours(cls, values: list[int]) -> list[int]:
        bad = [h for h in values if not 0 <= h <= 23]
        if bad:
            raise ValueError(f"hours must lie in 0..23 (got {bad})")
        return values

    @field_validator("intervals")
    @classmethod
    def _ordered(cls, values: list[TimeInterval]) -> list[TimeInterval]:
        for interval in values:
            # Compared as (year, month, day, hour, minute, second): model calendars have dates like Feb 30.
            start, end = _iso_parts(interval.start), _iso_parts(interval.end)
            if start is None or end is None:
                raise ValueError(f"interval {interval.start!r}..{interval.end!r}: not ISO times "
                                 "(YYYY-MM-DD[THH[:MM[:SS]]])")
            if start >= end:
                raise ValueError(f"interval start {interval.start} must be before its end {interval.end}")
        return values


_EARTH_SPAN_M = 10_000_000.0  # a Lambert azimuthal equal-area domain distorts badly beyond ~hemispheric extents
_MAX_DOMAIN_CELLS = 100_000_000  # one float32 feature of the domain stays under 400 MB


class DomainConfig(Section):
    """`ingest.source.domain`: a local Cartesian grid (convml_tt's names), Lambert azimuthal equal-area."""

    central_latitude: float = Field(ge=-90, le=90, description="degrees north of the domain centre")
    central_longitude: float = Field(ge=-360, le=360, description="degrees east of the domain centre")
    l_zonal: float = Field(gt=0, le=_EARTH_SPAN_M, description="west-east extent in metres")
    l_meridional: float = Field(gt=0, le=_EARTH_SPAN_M, description="south-north extent in metres")
    resolution: float = Field(gt=0, description="cell size in metres; must divide both extents")

    @model_validator(mode="after")
    def _whole_cells(self) -> DomainConfig:
        for name in ("l_zonal", "l_meridional"):
            cells = getattr(self, name) / self.resolution
            if cells < 1 or abs(cells - round(cells)) > 1e-6:
                raise ValueError(f"resolution {self.resolution:g} m does not divide {name} {getattr(self, name):g} m "
                                 "into whole cells (e.g. l_zonal: 200000 with resolution: 1000)")
        n_cells = round(self.l_zonal / self.resolution) * round(self.l_meridional / self.resolution)
        if n_cells > _MAX_DOMAIN_CELLS:
            raise ValueError(f"the domain has {n_cells} cells (more than {_MAX_DOMAIN_CELLS}): coarsen the resolution "
                             "or shrink l_zonal/l_meridional")
        from satflow.sources.domain import DomainGrid  # pyproj: imported only when a domain is configured

        DomainGrid(self).check_axes()
        return self


class RegridConfig(Section):
    """`ingest.source.regrid`: how inputs are resampled onto `source.domain`."""

    method: Literal["bilinear", "nearest"] = Field("bilinear", description="bilinear: an output cell is valid only "
                                                   "if all four surrounding inputs are; nearest: the input cell it falls in")


# --- profiles -----------------------------------------------------------------------------------
# The levels of `satflow sample ocean`: a store of the ocean sample and its profiles lines up by default.
SAMPLE_OCEAN_DEPTHS = (0.5, 10.0, 50.0, 100.0, 200.0)


class ProfilesConfig(Section):
    """Profiles resampled onto a depth axis, then averaged per grid cell and level over one file (month)."""

    variables: list[str] = Field(default_factory=lambda: ["POTM_CORRECTED"], min_length=1,
                                 description="value variables on (N_PROF, N_LEVELS), e.g. POTM_CORRECTED, TEMP, PSAL")
    names: dict[str, str] = Field(default_factory=lambda: {"POTM_CORRECTED": "thetao", "PSAL_CORRECTED": "so"},
                                  description="variable -> feature name (features <name>-d<k>, <name>-count); "
                                  "a variable not listed keeps its own name")
    depths: list[float] | None = Field(None, description="target depth axis in metres, ascending; null: the "
                                       "depth coordinate of depth_from, or without it the ocean sample's levels "
                                       f"{list(SAMPLE_OCEAN_DEPTHS)}")
    depth_from: str | None = Field(None, description="gridded NetCDF file whose depth coordinate is the target axis "
                                   "(e.g. a reanalysis file); replaces `depths`")
    resample: Literal["nearest", "linear"] = Field(
        "linear", description="linear: between the two valid levels bracketing a target depth (none outside the "
        "profile's range); nearest: the nearest valid level within max_distance_m")
    max_distance_m: float = Field(10.0, gt=0, description="nearest: farthest level (m) that may stand for a depth")
    accepted_qc: list[str] = Field(default_factory=lambda: ["1"], min_length=1,
                                   description="accepted flags of <VAR>_QC (level-wise), POSITION_QC and JULD_QC")
    accepted_profile_qc: list[str] = Field(default_factory=lambda: ["1", "A"], min_length=1,
                                           description="accepted flags of PROFILE_<VAR>_QC (EN4 '1', Argo grade 'A' = "
                                           "all levels good)")
    resolution: float | None = Field(2.0, gt=0, le=90, description="grid spacing in degrees (must tile 180 and "
                                     "360); null: the lat/lon grid of depth_from, cell for cell")
    count_name: str = Field("count", description="per-cell profile count feature <name>-<count_name>")

    @property
    def listed_depths(self) -> tuple[float, ...]:
        """The depths given in the config (or the default axis); depth_from, when set, replaces them."""
        return tuple(SAMPLE_OCEAN_DEPTHS if self.depths is None else self.depths)

    @field_validator("accepted_qc", "accepted_profile_qc", mode="before")
    @classmethod
    def _single_characters(cls, values):
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"give a list of flags such as ['1', '2'] (got {values!r})")
        values = [str(v) for v in values]  # YAML reads an unquoted 1 as a number
        bad = [v for v in values if len(v) != 1]
        if bad:
            raise ValueError(f"QC flags are single characters such as '1' (got {bad})")
        return values

    @field_validator("depths")
    @classmethod
    def _ascending(cls, values: list[float] | None) -> list[float] | None:
        if values is None:
            return values
        if not values:
            raise ValueError("give at least one target depth (metres), or depth_from")
        if any(v < 0 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"depths must be >= 0 and strictly ascending (got {values})")
        return values

    @model_validator(mode="after")
    def _one_axis_and_whole_cells(self) -> ProfilesConfig:
        if self.depth_from is not None and self.depths is not None:
            raise ValueError("give either depths or depth_from, not both")
        if self.resolution is None:
            if self.depth_from is None:
                raise ValueError("resolution null takes the grid of depth_from: set depth_from, or a resolution")
            return self
        for span in (180.0, 360.0):
            if abs(span / self.resolution - round(span / self.resolution)) > 1e-9:
                raise ValueError(f"resolution {self.resolution} does not tile {span:g} degrees into whole cells")
        return self


class SourceConfig(Section):
    kind: str = Field("gridded", description=kind_help())
    variables: list[str] = Field(default_factory=list, description="variables to ingest; empty = all gridded")
    sentinel: float | None = Field(None, description="fill value for files that declare none")
    convert_units: dict[str, str] = Field(
        default_factory=dict, description="variable -> target unit, e.g. {thetao: K} converts degC to K"
    )
    time_from_filename: str = Field(
        r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})(?:_t(?P<hour>\d{2}))?",
        description="regex with year/month/day[/hour] groups, used when a file has no time",
    )
    lon_convention: Literal["-180..180", "0..360"] = "-180..180"
    crop: CropBox | None = None
    swath: SwathConfig = Field(default_factory=SwathConfig)
    time_selection: TimeSelection = Field(default_factory=TimeSelection)
    derived: dict[str, str] = Field(default_factory=dict, description="new feature -> expression over features, "
                                    "e.g. {tb_diff: 'tmbrs-1 - tmbrs-2'}; NaN wherever an input is")
    domain: DomainConfig | None = Field(None, description="target grid of kind regrid: {central_latitude, "
                                        "central_longitude, l_zonal, l_meridional, resolution} (metres)")
    regrid: RegridConfig = Field(default_factory=RegridConfig)
    profiles: ProfilesConfig = Field(default_factory=ProfilesConfig)
    time_window: str | None = Field(None, description="average the inputs over windows of this ISO 8601 duration "
                                    "(P7D, P1D, PT6H; P1M, P3M, P1Y calendar months): each store step is the mean "
                                    "over finite values of the inputs whose times fall in its window, plus a "
                                    "per-cell `window-count`; null: one store step per input step")
    time_window_anchor: Literal["calendar", "centred"] | None = Field(
        None, description="calendar: windows [start, start + duration) aligned to 1970-01-01 (months: to "
        "calendar months), labelled by their start; centred: [centre - duration/2, centre + duration/2) around "
        "each of time_window_centres, labelled by the centre; unset: centred if centres are given, else calendar")
    time_window_centres: list[str] = Field(default_factory=list, description="ISO times of the centred windows; "
                                           "empty for an auxiliary product: the primary store's times")

    @property
    def window_anchor(self) -> str:
        """`time_window_anchor`, or when unset: centred if centres are given, else calendar."""
        return self.time_window_anchor or ("centred" if self.time_window_centres else "calendar")

    @field_validator("time_window")
    @classmethod
    def _window_duration(cls, value):
        if value is not None:
            window_length(value)
        return value

    @field_validator("time_window_centres", mode="before")
    @classmethod
    def _iso_centres(cls, values):
        """YAML reads an unquoted 2020-01-01 as a date: keep ISO text."""
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"give a list of ISO times such as ['2020-01-16T12:00'] (got {values!r})")
        values = [v.isoformat() if hasattr(v, "isoformat") else str(v) for v in values]
        bad = [v for v in values if _iso_parts(v) is None]
        if bad:
            raise ValueError(f"time_window_centres must be ISO times (YYYY-MM-DD[THH[:MM[:SS]]]); got {bad}")
        return values

    @model_validator(mode="after")
    def _window_anchor(self) -> SourceConfig:
        if self.time_window_centres and self.time_window_anchor == "calendar":
            raise ValueError("time_window_centres are the centres of centred windows: set time_window_anchor: centred "
                             "(or leave it unset)")
        if self.time_window is not None and self.window_anchor == "centred" \
                and window_length(self.time_window).months:
            raise ValueError(f"time_window {self.time_window}: calendar months have no fixed length to centre; "
                             "give days (e.g. P30D) or use time_window_anchor: calendar")
        return self

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, value: str) -> str:
        return known_kind(value)

    @model_validator(mode="after")
    def _kind_options(self) -> SourceConfig:
        check_kind_options(self)
        return self

    @field_validator("derived")
    @classmethod
    def _expressions(cls, values: dict[str, str]) -> dict[str, str]:
        from satflow.sources.derived import DerivedFeatureError, parse

        for name, expression in values.items():
            try:
                parse(expression)
            except DerivedFeatureError as err:
                raise ValueError(f"derived feature {name!r}: {err}") from None
        return values


_ISO_DURATION = re.compile(r"P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
                           r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
                           r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?")
_DURATION_HOURS = {"weeks": 168.0, "days": 24.0, "hours": 1.0, "minutes": 1 / 60, "seconds": 1 / 3600}


def duration_hours(value: str | float) -> float:
    """An ISO 8601 duration (`PT30M`, `P1D`, `P1DT12H`) or a number of hours -> hours (> 0)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        hours = float(value)
    else:
        text = str(value).strip().upper()
        match = _ISO_DURATION.fullmatch(text)
        if match is None or text in ("P", "PT") or text.endswith("T"):
            hint = " (months and years have no fixed length: give days, e.g. P30D)" \
                if text.startswith("P") and re.search(r"\d[YM]", text.split("T")[0]) else ""
            raise ValueError(f"{value!r} is not an ISO 8601 duration such as PT30M, PT1H or P1D, nor a number of "
                             f"hours{hint}")
        hours = sum(float(v) * _DURATION_HOURS[k] for k, v in match.groupdict().items() if v)
    if not hours > 0:
        raise ValueError(f"duration {value!r} must be longer than zero")
    return hours


@dataclass(frozen=True)
class WindowLength:
    """A time window: whole calendar months, or a fixed number of hours (one of the two is zero)."""

    months: int = 0
    hours: float = 0.0


_MONTHS_DURATION = re.compile(r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?")


def window_length(value: str) -> WindowLength:
    """`P1M`, `P3M`, `P1Y` -> calendar months; any other ISO 8601 duration (`P7D`, `PT6H`) -> hours."""
    text = str(value).strip().upper()
    match = _MONTHS_DURATION.fullmatch(text)
    if match is not None and text != "P":
        months = 12 * int(match["years"] or 0) + int(match["months"] or 0)
        if months <= 0:
            raise ValueError(f"time_window {value!r} must be longer than zero")
        return WindowLength(months=months)
    if re.search(r"\d[YM]", text.split("T")[0]):
        raise ValueError(f"time_window {value!r}: combine months with nothing else (P1M, P3M, P1Y) or give days "
                         "and hours (P7D, PT6H)")
    return WindowLength(hours=duration_hours(text))


SceneMappingStrategy = Literal["single_scene_per_aux_time", "all_scenes_within_dt_aux"]


class AuxProductConfig(Section):
    """`ingest.aux_products.<name>`: a second source mapped onto the primary store's grid and times."""

    inputs: list[str] = Field(min_length=1, description="paths or globs of the auxiliary files")
    source: SourceConfig = Field(default_factory=SourceConfig, description="how to read them (the same keys as "
                                 "ingest.source); on a primary domain, kind regrid onto the primary's domain")
    scene_mapping_strategy: SceneMappingStrategy = Field(
        "single_scene_per_aux_time", description="single_scene_per_aux_time: each auxiliary time fills the one "
        "nearest primary time within dt_aux; all_scenes_within_dt_aux: each primary time takes the nearest "
        "auxiliary time within dt_aux/2")
    dt_aux: str | float | None = Field(None, description="auxiliary time resolution: ISO 8601 duration (PT30M, P1D) "
                                       "or hours; default: the smallest span between two auxiliary times")
    method: Literal["bilinear", "nearest"] = Field(
        "bilinear", description="resampling onto a primary lat/lon grid that differs from the auxiliary one "
        "(on a primary domain, source.regrid.method applies)")

    @field_validator("dt_aux")
    @classmethod
    def _duration(cls, value):
        if value is not None:
            duration_hours(value)
        return value

    @property
    def dt_aux_hours(self) -> float | None:
        return None if self.dt_aux is None else duration_hours(self.dt_aux)
