"""Config section `eval:` (owned by satflow.eval); every key is also a flag of `satflow eval`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from satflow.options import Section


class BlockConfig(Section):
    """Block shape in cells; 0 = the store's chunk along that dimension."""

    lat: int = Field(0, ge=0, description="block height in cells (0 = the store's lat chunk)")
    lon: int = Field(0, ge=0, description="block width in cells (0 = the store's lon chunk)")


class AcceptanceConfig(Section):
    """Community thresholds (Baker et al.; ldcpy) reported as pass/fail per feature."""

    enabled: bool = Field(False, description="report the acceptance tests per feature")
    pearson_r: float = Field(0.99999, description="Pearson correlation must be at least this")
    dssim: float = Field(0.995, description="DSSIM must be at least this")
    rel_threshold: float = Field(1e-4, gt=0, description="relative error |e|/|x| beyond which a point counts")
    rel_error_exceed_share: float = Field(0.05, ge=0, le=1, description="at most this share of points beyond it")


class EvalConfig(Section):
    codecs: list[str | dict] = Field(
        default_factory=lambda: ["sz3:tol=0.5"],
        description="codec specs: NAME or NAME:KEY=VALUE,... (or {name, params} mappings)")
    checkpoint: str | None = Field(None, description="checkpoint for learned codecs whose spec names none")
    time: str | None = Field(None, description="time index range A:B of the store (default all)")
    block: BlockConfig = Field(default_factory=BlockConfig)
    batch_size: int = Field(4, gt=0, description="blocks per task: whole fields while they fit, at least one field "
                            "(one encode_batch/decode_batch call)")
    index: str | None = Field(None, description="patch index: evaluate a sample of its patches instead of the cube")
    split: str | None = Field("test", description="with index: the split to sample from (null = all)")
    sample: int = Field(64, gt=0, description="with index: patches to sample")
    seed: int = Field(0, description="with index: sampling seed")
    field_metrics: bool = Field(True, description="DSSIM, error autocorrelation and spectra on whole 2-D fields")
    reconstruction: bool = Field(
        False, description="also write DIR/<codec>/reconstruction.zarr (compressed.zarr already decodes to it)")
    acceptance: AcceptanceConfig = Field(default_factory=AcceptanceConfig)
    gpu: Literal["auto", "always", "never"] = Field(
        "auto", description="learned codecs ask for a GPU worker: auto = when a worker advertises GPU")
    retries: int = Field(2, ge=0, description="retries of a task whose worker died")
    performance_report: str | None = Field(None, description="write a Dask performance report (HTML) here")

    @field_validator("codecs")
    @classmethod
    def _some_codec(cls, value: list) -> list:
        if not value:
            raise ValueError("give at least one codec spec, e.g. ['sz3:tol=0.5']")
        return value
