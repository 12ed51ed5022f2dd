"""Config section `cluster:` (owned by satflow.runtime): a local cluster, SLURM jobs or a scheduler address.

`satflow.runtime.cluster` turns it into a Dask client. Every SLURM value that reaches a worker job
script is validated here, so that no value can add an #SBATCH directive or a shell command of its own.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from satflow.options import Section


class LocalClusterConfig(Section):
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


class SlurmClusterConfig(Section):
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


class ClusterConfig(Section):
    kind: Literal["local", "slurm", "address"] = "local"
    address: str | None = Field(None, description="scheduler address, for kind: address")
    local: LocalClusterConfig = Field(default_factory=LocalClusterConfig)
    slurm: SlurmClusterConfig = Field(default_factory=SlurmClusterConfig)

    @model_validator(mode="after")
    def _address_given(self) -> ClusterConfig:
        if self.kind == "address" and not self.address:
            raise ValueError("kind 'address' needs cluster.address (for example tcp://host:8786)")
        return self
