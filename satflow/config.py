"""Validated configuration: YAML files under configs/, overridable with `--set a.b.c=value`.

Each stage owns its section model (ingest and cluster here; `index`, `codec` and `train` in their
packages); this module assembles them and turns pydantic's errors into messages that name the
file and the dotted key path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from satflow.codecs.options import CodecConfig, TrainConfig
from satflow.eval.options import EvalConfig
from satflow.index.options import IndexConfig


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- cluster -----------------------------------------------------------------------------------
class LocalClusterConfig(_Section):
    n_workers: int = Field(2, gt=0)
    threads_per_worker: int = Field(1, gt=0)
    memory_limit: str = Field("4GiB", description="per worker, as dask parses it ('4GiB', '0' = no limit)")
    dashboard_address: str = Field("127.0.0.1:0", description="host:port; port 0 picks a free one")
    processes: bool = Field(True, description="worker processes; false runs thread workers whose NetCDF reads take "
                            "turns on the HDF5 lock (netCDF4 is not thread-safe); measured on 40 0.5-degree files "
                            "their ingest was as fast (compression runs in parallel), reads are the serialised part")


_SLURM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# SLURM time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_SLURM_TIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}")
_DASK_TIME = re.compile(r"\d+(\.\d+)?\s?(ms|s|m|h|d|seconds?|minutes?|hours?|days?)?")
_SHELL_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./~-]+")  # safe unquoted in a shell line and in an #SBATCH line
_SHELL_WORD_HINT = "letters, digits and _@%+=:,./~- only (no spaces, quotes, ;, &, |, $, `, newlines)"


def _no_control(value: str, what: str) -> str:
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"{what} {value!r} contains the control character {bad!r}: one value must stay one "
                         "line of the job script (a newline would start a new directive or command)")
    return value


def _shell_word(value: str, what: str) -> str:
    if not _SHELL_WORD.fullmatch(value):
        raise ValueError(f"{what} {value!r} goes unquoted into the worker job script: use {_SHELL_WORD_HINT}")
    return value


class SlurmClusterConfig(_Section):
    """`cluster.slurm`: worker jobs submitted by dask-jobqueue. Every value that reaches the job script is
    validated so that none can add an #SBATCH directive or a shell command of its own."""

    queue: str | None = Field(None, description="partition (#SBATCH -p)")
    account: str | None = Field(None, description="allocation charged (#SBATCH -A)")
    job_name: str = Field("satflow-worker", description="#SBATCH -J of worker jobs (the driver adds a run id)")
    cores: int = Field(4, gt=0)
    memory: str = "16GiB"
    processes: int = Field(1, gt=0)
    walltime: str = Field("01:00:00", description="per worker job (#SBATCH -t): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S")
    job_extra_directives: list[str] = Field(default_factory=list, description="extra #SBATCH options, one per line")
    job_script_prologue: list[str] = Field(default_factory=list, description="shell lines run before the worker")
    worker_extra_args: list[str] = Field(default_factory=list, description="extra `dask worker` flags")
    lifetime: str | None = Field(None, description="workers retire after this long (dask time, e.g. 115m), "
                                 "before the walltime kills them; use with adaptive scaling, which replaces them")
    lifetime_stagger: str | None = Field(None, description="random spread of lifetime, so workers do not all "
                                         "retire at once (e.g. 4m)")
    bind: Literal["loopback", "interface"] = Field(
        "loopback", description="loopback: scheduler and workers listen on 127.0.0.1 only (jobs on this host: "
        "single-node SLURM, tests); interface: they listen on `interface`, which multi-node jobs need")
    interface: str | None = Field(None, description="network interface for bind: interface (e.g. ib0)")
    dashboard_address: str = Field("127.0.0.1:8787", description="host:port of the dashboard (0 = any free port); "
                                   "a non-loopback host needs bind: interface")
    log_directory: str | None = None
    local_directory: str | None = None
    jobs: int = Field(1, ge=0, description="fixed number of jobs (ignored when adaptive)")
    adaptive_minimum: int | None = Field(None, ge=0)
    adaptive_maximum: int | None = Field(None, gt=0)
    gpus_per_job: int = Field(0, ge=0, description="adds --gres=gpu:N and a GPU worker resource, split among "
                              "the job's processes so that no GPU is advertised twice")

    @field_validator("queue", "account", "job_name")
    @classmethod
    def _slurm_name(cls, value: str | None, info) -> str | None:
        if value is not None and not _SLURM_NAME.fullmatch(value):
            raise ValueError(f"{info.field_name} {value!r} is not a SLURM name: use letters, digits, '.', '_' and '-' "
                             "(it becomes an #SBATCH option of every worker job)")
        return value

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str) -> str:
        if not _SLURM_TIME.fullmatch(value):
            raise ValueError(f"walltime {value!r} is not a SLURM time: use M, M:S, H:M:S, D-H, D-H:M or D-H:M:S "
                             "(e.g. 02:00:00 or 1-12:00:00)")
        return value

    @field_validator("lifetime", "lifetime_stagger")
    @classmethod
    def _dask_time(cls, value: str | None, info) -> str | None:
        if value is not None and not _DASK_TIME.fullmatch(value):
            raise ValueError(f"{info.field_name} {value!r} is not a duration: use e.g. 90s, 115m or 2h")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        from dask.utils import parse_bytes

        try:
            parse_bytes(_shell_word(value, "memory"))
        except ValueError as err:
            raise ValueError(f"memory {value!r} is not a size: use e.g. 16GiB or 4000MB") from err
        return value

    @field_validator("job_extra_directives")
    @classmethod
    def _directives(cls, values: list[str]) -> list[str]:
        for value in values:
            _no_control(value, "job_extra_directives entry")
            if not value.startswith("-"):
                raise ValueError(f"job_extra_directives entry {value!r} must be one sbatch option starting with '-' "
                                 "(e.g. --qos=normal); it is written after '#SBATCH '")
        return values

    @field_validator("job_script_prologue")
    @classmethod
    def _prologue(cls, values: list[str]) -> list[str]:
        for value in values:
            _no_control(value, "job_script_prologue line")
            if value.lstrip().upper().startswith("#SBATCH"):
                raise ValueError(f"job_script_prologue line {value!r} is a directive: put sbatch options in "
                                 "job_extra_directives")
        return values

    @field_validator("worker_extra_args")
    @classmethod
    def _worker_args(cls, values: list[str]) -> list[str]:
        for value in values:
            _shell_word(value, "worker_extra_args entry")
        return values

    @field_validator("interface", "log_directory", "local_directory")
    @classmethod
    def _words(cls, value: str | None, info) -> str | None:
        return None if value is None else _shell_word(value, info.field_name)

    @model_validator(mode="after")
    def _adaptive_bounds(self) -> SlurmClusterConfig:
        lo, hi = self.adaptive_minimum, self.adaptive_maximum
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"adaptive_minimum ({lo}) must not exceed adaptive_maximum ({hi})")
        return self

    @model_validator(mode="after")
    def _bind(self) -> SlurmClusterConfig:
        if self.bind == "loopback":
            if self.interface not in (None, "lo"):
                raise ValueError(f"interface {self.interface!r} with bind: loopback: workers on other nodes would "
                                 "need the scheduler on that interface; set bind: interface to open it explicitly")
            host = self.dashboard_address.rsplit(":", 1)[0].strip("[]")
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise ValueError(f"dashboard_address {self.dashboard_address!r} is not on loopback; set bind: "
                                 "interface to serve the dashboard beyond this host, or use 127.0.0.1:PORT and an "
                                 "ssh tunnel")
        elif not self.interface:
            raise ValueError("bind: interface needs interface (e.g. ib0 or eth0; `ip -brief addr` lists them)")
        return self


class ClusterConfig(_Section):
    kind: Literal["local", "slurm", "address"] = "local"
    address: str | None = Field(None, description="scheduler address, for kind: address")
    local: LocalClusterConfig = Field(default_factory=LocalClusterConfig)
    slurm: SlurmClusterConfig = Field(default_factory=SlurmClusterConfig)

    @model_validator(mode="after")
    def _address_given(self) -> ClusterConfig:
        if self.kind == "address" and not self.address:
            raise ValueError("kind 'address' needs cluster.address (for example tcp://host:8786)")
        return self


# --- ingest ------------------------------------------------------------------------------------
class CropBox(_Section):
    lat_min: float = Field(-90.0, ge=-90, le=90)
    lat_max: float = Field(90.0, ge=-90, le=90)
    lon_min: float = -180.0
    lon_max: float = 180.0

    @model_validator(mode="after")
    def _ordered(self) -> CropBox:
        if self.lat_min >= self.lat_max:
            raise ValueError(f"lat_min ({self.lat_min}) must be below lat_max ({self.lat_max})")
        return self


class ChunkConfig(_Section):
    time: int = Field(1, gt=0)
    feature: int = Field(-1, description="-1 keeps all features in one chunk")
    lat: int = Field(384, gt=0)
    lon: int = Field(720, gt=0)

    @field_validator("feature")
    @classmethod
    def _feature(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("must be a positive chunk size or -1 (all features)")
        return value


class SwathConfig(_Section):
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


class TimeInterval(_Section):
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


class TimeSelection(_Section):
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


class DomainConfig(_Section):
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


class RegridConfig(_Section):
    """`ingest.source.regrid`: how inputs are resampled onto `source.domain`."""

    method: Literal["bilinear", "nearest"] = Field("bilinear", description="bilinear: an output cell is valid only "
                                                   "if all four surrounding inputs are; nearest: the input cell it falls in")


class SourceConfig(_Section):
    kind: Literal["gridded", "swath", "regrid"] = Field(
        "gridded", description="gridded: CF NetCDF on a regular lat/lon grid, one input per file; swath: raw swaths "
        "binned per time window; regrid: gridded or projected (CF grid_mapping) files resampled onto source.domain")
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

    @model_validator(mode="after")
    def _domain_for_regrid(self) -> SourceConfig:
        if self.kind == "regrid" and self.domain is None:
            raise ValueError("kind regrid needs source.domain: {central_latitude, central_longitude, l_zonal, "
                             "l_meridional, resolution} (extents and resolution in metres)")
        if self.kind != "regrid" and self.domain is not None:
            raise ValueError(f"source.domain is the target grid of kind regrid, not of kind {self.kind}: "
                             "set kind: regrid or remove domain")
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


SceneMappingStrategy = Literal["single_scene_per_aux_time", "all_scenes_within_dt_aux"]
_AUX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AuxProductConfig(_Section):
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


class IngestConfig(_Section):
    inputs: list[str] = Field(default_factory=list, description="paths or globs")
    source: SourceConfig = Field(default_factory=SourceConfig)
    aux_products: dict[str, AuxProductConfig] = Field(
        default_factory=dict, description="auxiliary products co-located with the primary data: "
        "{name: {inputs, source, scene_mapping_strategy, dt_aux}}; their features are stored as <name>/<feature>")
    chunks: ChunkConfig = Field(default_factory=ChunkConfig)
    compression_level: int = Field(1, ge=0, le=9, description="Blosc zstd level; 1 measured fastest at the same size (benchmarks/ingest)")
    strict: bool = Field(False, description="exit non-zero when any input was skipped")

    @model_validator(mode="before")
    @classmethod
    def _aux_on_primary_domain(cls, data):
        """On a primary domain, an auxiliary product is regridded onto that same domain: fill it in."""
        if not isinstance(data, dict) or not isinstance(data.get("aux_products"), dict):
            return data
        primary = data.get("source")
        primary = primary.model_dump() if isinstance(primary, BaseModel) else primary or {}
        if primary.get("kind") != "regrid" or not primary.get("domain"):
            return data
        products = {}
        for name, product in data["aux_products"].items():
            if isinstance(product, dict):
                source = product.get("source")
                source = dict(source.model_dump() if isinstance(source, BaseModel) else source or {})
                source.setdefault("kind", "regrid")
                if source["kind"] == "regrid" and not source.get("domain"):
                    source["domain"] = primary["domain"]
                product = {**product, "source": source}
            products[name] = product
        return {**data, "aux_products": products}

    @model_validator(mode="after")
    def _aux_products(self) -> IngestConfig:
        primary_domain = self.source.domain if self.source.kind == "regrid" else None
        for name, product in self.aux_products.items():
            where = f"aux_products.{name}"
            if not _AUX_NAME.fullmatch(name):
                raise ValueError(f"{where}: the name must be letters, digits and '_' (not starting with a digit): "
                                 "it prefixes the product's feature names (<name>/<feature>)")
            kind = product.source.kind
            if primary_domain is not None and (kind != "regrid" or product.source.domain != primary_domain):
                raise ValueError(f"{where}.source: the primary store is on a local domain, so the auxiliary product "
                                 "is regridded onto that domain: use kind regrid and leave source.domain unset "
                                 "(it defaults to the primary's)")
            if primary_domain is None and kind == "regrid":
                raise ValueError(f"{where}.source: kind regrid targets a local domain, but the primary store is on "
                                 "a lat/lon grid: use kind gridded (resampled onto the primary grid) or swath")
        return self


# --- sample data -------------------------------------------------------------------------------
class SampleConfig(_Section):
    kind: Literal["amsua", "amsua-swath", "ocean"] = "amsua"
    start: str = "2020-01-01"
    steps: int = Field(8, gt=0, description="files to write (6-hourly for amsua, monthly for ocean); "
                       "6-hourly windows for amsua-swath")
    resolution: float = Field(2.0, gt=0, le=10, description="grid spacing in degrees (0.25 = real product)")
    seed: int = 0


class SatflowConfig(_Section):
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is a value, not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b.c=value` -> ('a.b.c', parsed YAML scalar/list)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set ingest.chunks.lat=128")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        return key, yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({err.__class__.__name__})") from err


def format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid configuration"]
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `satflow config` prints every key)"
        else:
            message = item["msg"]
            if "input" in item and not isinstance(item["input"], dict):
                message += f" (got {item['input']!r})"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> SatflowConfig:
    """Read a YAML config (or the defaults), apply `--set` overrides, validate everything."""
    tree: dict = {}
    origin = "defaults"
    if path is not None:
        origin = str(path)
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from err
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections (cluster, ingest, ...)")
        tree = loaded or {}
    for text in overrides:
        key, value = parse_override(text)
        _set_path(tree, key, value)
    if overrides:
        origin += " with --set " + " ".join(overrides)
    try:
        return SatflowConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_errors(err, origin)) from None


def dump_config(config: SatflowConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
