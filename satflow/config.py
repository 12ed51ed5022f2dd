"""Validated configuration: YAML files under configs/, overridable with `--set a.b.c=value`.

Each stage owns its section model (ingest and cluster here; `index`, `codec` and `train` in their
packages); this module assembles them and turns pydantic's errors into messages that name the
file and the dotted key path.
"""

from __future__ import annotations

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
    processes: bool = Field(True, description="worker processes (HDF5 holds a global lock: keep True)")


class SlurmClusterConfig(_Section):
    queue: str | None = None
    account: str | None = None
    cores: int = Field(4, gt=0)
    memory: str = "16GiB"
    processes: int = Field(1, gt=0)
    walltime: str = "01:00:00"
    job_extra_directives: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    interface: str | None = None
    log_directory: str | None = None
    local_directory: str | None = None
    jobs: int = Field(1, ge=0, description="fixed number of jobs (ignored when adaptive)")
    adaptive_minimum: int | None = Field(None, ge=0)
    adaptive_maximum: int | None = Field(None, gt=0)
    gpus_per_job: int = Field(0, ge=0, description="adds --gres=gpu:N and a GPU worker resource")

    @model_validator(mode="after")
    def _adaptive_bounds(self) -> SlurmClusterConfig:
        lo, hi = self.adaptive_minimum, self.adaptive_maximum
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"adaptive_minimum ({lo}) must not exceed adaptive_maximum ({hi})")
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
    lat: int = Field(256, gt=0)
    lon: int = Field(256, gt=0)

    @field_validator("feature")
    @classmethod
    def _feature(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("must be a positive chunk size or -1 (all features)")
        return value


class SourceConfig(_Section):
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


class IngestConfig(_Section):
    inputs: list[str] = Field(default_factory=list, description="paths or globs")
    source: SourceConfig = Field(default_factory=SourceConfig)
    chunks: ChunkConfig = Field(default_factory=ChunkConfig)
    compression_level: int = Field(5, ge=0, le=9)
    strict: bool = Field(False, description="exit non-zero when any input was skipped")


# --- sample data -------------------------------------------------------------------------------
class SampleConfig(_Section):
    kind: Literal["amsua", "ocean"] = "amsua"
    start: str = "2020-01-01"
    steps: int = Field(8, gt=0, description="files to write (6-hourly for amsua, monthly for ocean)")
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


def _format_errors(err: ValidationError, origin: str) -> str:
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
        raise ConfigError(_format_errors(err, origin)) from None


def dump_config(config: SatflowConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
